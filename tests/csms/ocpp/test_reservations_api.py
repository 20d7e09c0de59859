"""Reservations by operators over HTTP and the CLI, to simulated stations of both versions on a
whole node (its own OCPP server, billing plugged in)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from csms.cli.main import main
from csms.simulator.station import SimStation
from tests.conftest import Api
from tests.csms.ocpp.conftest import PASSWORD, add_badge, add_site, add_station
from tests.csms.problems import problem, problem_lines

PROTOCOLS = pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
URL = "/api/v1/stations/WB-1/reservations"


async def prepared(api: Api, protocol: str) -> dict[str, str]:
    engine = api.node.engine
    await add_site(engine)
    await add_station(engine, "WB-1", protocol=protocol, connectors=1)
    await add_badge(engine, "04A2B3C4", "a-01")
    return await api.token("owner", site="s1")


def station(api: Api, protocol: str) -> SimStation:
    return SimStation(api.node.ocpp_url, "WB-1", protocol=protocol, password=PASSWORD)


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    """What the CLI printed (the node's own log lines share stdout in this process)."""
    return "".join(line for line in capsys.readouterr().out.splitlines(keepends=True)
                   if "\tconnector " in line)


@PROTOCOLS
async def test_reserve_list_and_cancel(api: Api, protocol: str) -> None:
    headers = await prepared(api, protocol)
    async with station(api, protocol) as sim:
        await sim.boot()
        response = await api.client.post(
            URL, json={"connector": 1, "id_tag": "04a2b3c4", "minutes": 30}, headers=headers)
        assert response.status_code == 201, response.text
        made = response.json()
        assert made["answer"] == "Accepted" and made["state"] == "active"
        assert made["badge_uid"] == "04A2B3C4" and made["account_id"] == "a-01"
        assert made["id_tag"] == "04A2B3C4"  # as the station reads it (hex)
        assert made["connector"] == 1
        # What the station is then told of badges is tests/csms/charging/test_reservations.py.
        assert list(sim.memory.reservations) == [made["id"]]

        listed = (await api.client.get(URL, headers=headers)).json()
        assert [r["id"] for r in listed] == [made["id"]]

        cancel = f"{URL}/{made['id']}/cancel"
        response = await api.client.post(cancel, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == "Accepted"
        assert response.json()["reservation"]["state"] == "cancelled"
        assert sim.memory.reservations == {}
        response = await api.client.post(cancel, headers=headers)
        assert response.status_code == 409
        assert "is cancelled" in problem(response)["detail"]

        # A station that does not know it any more answers Rejected: nothing changes here.
        made = (await api.client.post(URL, json={"id_tag": "04A2B3C4", "minutes": 5},
                                      headers=headers)).json()
        assert made["connector"] == 0
        sim.memory.reservations.clear()
        response = await api.client.post(f"{URL}/{made['id']}/cancel", headers=headers)
        assert response.status_code == 409
        assert "answered Rejected" in problem(response)["detail"]


async def test_bad_requests_change_nothing(api: Api) -> None:
    headers = await prepared(api, "ocpp1.6")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    async with station(api, "ocpp1.6") as sim:
        await sim.boot()
        response = await api.client.post(
            URL, json={"connector": 2, "id_tag": "0499999999", "expires_at": past},
            headers=headers)
        assert response.status_code == 422
        lines = problem_lines(response)
        assert [line.split(":")[0] for line in lines] == [
            "body.connector", "body.expires_at", "body.id_tag"]
        response = await api.client.post(
            URL, json={"id_tag": "04A2B3C4", "minutes": 5, "expires_at": past}, headers=headers)
        assert response.status_code == 422
        assert problem_lines(response) == ["body.expires_at: give expires_at or minutes, "
                                           "one of them"]
        assert not [a for a, _ in sim.memory.received if a == "ReserveNow"]
    # Not connected: nothing sent, nothing kept.
    response = await api.client.post(URL, json={"id_tag": "04A2B3C4", "minutes": 5},
                                     headers=headers)
    assert response.status_code == 409
    assert (await api.client.get(URL, headers=headers)).json() == []
    response = await api.client.post("/api/v1/stations/WB-404/reservations",
                                     json={"id_tag": "04A2B3C4", "minutes": 5}, headers=headers)
    assert response.status_code == 404
    response = await api.client.post(f"{URL}/4711/cancel", headers=headers)
    assert response.status_code == 404
    resident = await api.token("resident", site="s1", account="a-01")
    response = await api.client.post(URL, json={"id_tag": "04A2B3C4", "minutes": 5},
                                     headers=resident)
    assert response.status_code == 403


async def test_cli_reserves_lists_and_cancels(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = await prepared(api, "ocpp2.0.1")
    token = headers["Authorization"].removeprefix("Bearer ")
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", api.node.settings.database_url)
    node = ["--url", api.node.http_url, "--token", token]
    async with station(api, "ocpp2.0.1") as sim:
        await sim.boot()
        code = await asyncio.to_thread(main, [
            "station", "reserve", "WB-1", "--badge", "04A2B3C4", "--connector", "1",
            "--for", "45m", *node])
        out = printed(capsys)
        assert code == 0, out
        reservation_id = int(out.split("\t")[0])
        assert "\tconnector 1\t04A2B3C4\t" in out and out.rstrip().endswith("Accepted\tactive")
        assert list(sim.memory.reservations) == [reservation_id]

        assert await asyncio.to_thread(main, ["station", "reservations", "WB-1"]) == 0
        assert printed(capsys).startswith(f"{reservation_id}\tconnector 1\t")

        code = await asyncio.to_thread(main, [
            "station", "cancel-reservation", "WB-1", str(reservation_id), *node])
        assert code == 0
        assert printed(capsys).rstrip().endswith("\tcancelled")
        assert sim.memory.reservations == {}

        sim.memory.reserve_answer = "Unavailable"
        code = await asyncio.to_thread(main, [
            "station", "reserve", "WB-1", "--badge", "04A2B3C4", "--for", "1h", *node])
        assert code == 1
        assert printed(capsys).rstrip().endswith("Unavailable\trefused")

        code = await asyncio.to_thread(main, [
            "station", "reserve", "WB-1", "--badge", "04A2B3C4", "--connector", "7",
            "--for", "1h", *node])
        assert code == 2
        assert "volthaus station reserve: body.connector: 7 is not" in capsys.readouterr().err
    assert main(["station", "reserve", "WB-1", "--badge", "04A2B3C4", "--for", "soon",
                 *node]) == 2
    assert "--for: not a duration" in capsys.readouterr().err
