"""Operator commands over HTTP, through the bus, to simulated stations of both versions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from csms.ocpp.server import OcppServer, ServerOptions
from csms.simulator.station import SimStation
from tests.conftest import Api
from tests.csms.ocpp.conftest import PASSWORD, add_badge, add_site, add_station, utc_now
from tests.csms.ocpp.wsclient import open_raw
from tests.csms.problems import problem, problem_lines


@dataclass
class Setup:
    api: Api
    server: OcppServer
    headers: dict[str, str]

    def station(self, station_id: str, **kwargs: object) -> SimStation:
        return SimStation(
            f"ws://127.0.0.1:{self.server.port}/ocpp",
            station_id,
            password=PASSWORD,
            **kwargs,  # type: ignore[arg-type]
        )

    async def command(self, station_id: str, action: str, body: object, **params: object):  # type: ignore[no-untyped-def]
        return await self.api.client.post(
            f"/api/v1/stations/{station_id}/commands/{action}",
            json=body,
            headers=self.headers,
            params=params,
        )


@pytest.fixture
async def setup(api: Api) -> AsyncIterator[Setup]:
    engine = api.node.engine
    await add_site(engine)
    server = OcppServer(
        engine=engine,
        bus=api.node.bus,
        clock=utc_now,
        heartbeat_interval_s=300,
        pending_retry_interval_s=60,
        options=ServerOptions(port=0),
    )
    await server.start()
    yield Setup(api, server, await api.token("installer", site="s1"))
    await server.stop()


@pytest.mark.parametrize(
    ("protocol", "action", "body", "answer", "seen"),
    [
        ("ocpp1.6", "Reset", {"type": "Hard"}, {"status": "Accepted"}, ("Reset", {"type": "Hard"})),
        (
            "ocpp1.6",
            "ChangeConfiguration",
            {"key": "MeterValueSampleInterval", "value": "10"},
            {"status": "Accepted"},
            None,
        ),
        (
            "ocpp1.6",
            "RemoteStartTransaction",
            {"idTag": "04A2B3C4", "connectorId": 1},
            {"status": "Accepted"},
            None,
        ),
        # limits in tenths (the 1.6 schema's multipleOf 0.1) once crashed the check (issue 14)
        (
            "ocpp1.6",
            "SetChargingProfile",
            {"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": 9, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 10.5}, {"startPeriod": 60, "limit": 6.1}]}}},
            {"status": "Accepted"},
            None,
        ),
        (
            "ocpp1.6",
            "RemoteStartTransaction",
            {"idTag": "04A2B3C4", "connectorId": 1, "chargingProfile": {
                "chargingProfileId": 10, "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 7400.0}]}}},
            {"status": "Accepted"},
            None,
        ),
        (
            "ocpp2.0.1",
            "RequestStartTransaction",
            {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "remoteStartId": 7},
            {"status": "Accepted"},
            None,
        ),
        (
            "ocpp2.0.1",
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
            {
                "getVariableResult": [
                    {
                        "attributeStatus": "UnknownVariable",
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
            None,
        ),
        (
            "ocpp2.0.1",
            "CostUpdated",
            {"totalCost": 12.34, "transactionId": "tx-1"},
            {},
            ("CostUpdated", {"total_cost": 12.34, "transaction_id": "tx-1"}),
        ),
    ],
)
async def test_command_round_trip(
    setup: Setup, protocol: str, action: str, body: dict, answer: dict, seen: tuple | None
) -> None:
    await add_station(setup.api.node.engine, "WB-1", protocol=protocol)
    async with setup.station("WB-1", protocol=protocol) as sim:
        await sim.boot()
        response = await setup.command("WB-1", action, body)
        assert response.status_code == 200, response.text
        assert response.json() == answer
        assert sim.memory.received[-1][0] == action
        if seen is not None:
            assert sim.memory.received[-1] == seen


async def test_command_refusals(setup: Setup) -> None:
    engine = setup.api.node.engine
    await add_station(engine, "WB-1")
    await add_station(engine, "WB-2", protocol="ocpp2.0.1")
    response = await setup.command("WB-404", "Reset", {"type": "Hard"})
    assert response.status_code == 404
    response = await setup.command("WB-1", "Reset", {"type": "Hard"})
    assert response.status_code == 409 and "not connected" in problem(response)["detail"]
    response = await setup.command("WB-1", "Reset", {"type": "Sideways"})
    assert response.status_code == 422
    assert problem_lines(response)[0].startswith("body.type: 'Sideways' is not one of")
    response = await setup.command("WB-1", "Reset", {})
    assert response.status_code == 422 and "'type' is a required property" in response.text
    response = await setup.command("WB-1", "RequestStartTransaction", {})
    assert response.status_code == 422 and problem_lines(response)[0].startswith("action:")
    response = await setup.command("WB-2", "RemoteStartTransaction", {"idTag": "x"})
    assert response.status_code == 422
    await add_badge(engine)
    await add_site(engine, "s2")
    resident = await setup.api.token("resident", site="s1", account="a-01")
    response = await setup.api.client.post(
        "/api/v1/stations/WB-1/commands/Reset", json={"type": "Hard"}, headers=resident
    )
    assert response.status_code == 403
    other_site = await setup.api.token("owner", site="s2")
    response = await setup.api.client.post(
        "/api/v1/stations/WB-1/commands/Reset", json={"type": "Hard"}, headers=other_site
    )
    assert response.status_code == 403


async def test_timeout_and_drop_mid_call(setup: Setup) -> None:
    await add_station(setup.api.node.engine, "WB-1")
    async with setup.station("WB-1") as sim:
        await sim.boot()
        sim.memory.hang_on.add("Reset")
        response = await setup.command("WB-1", "Reset", {"type": "Soft"}, timeout=0.5)
        assert response.status_code == 504
        sim.memory.hang_on.clear()
    async with setup.station("WB-1") as sim:
        await sim.boot()
        sim.memory.drop_on.add("ClearCache")
        # A long timeout: the answer must come from the drop, not from the clock.
        async with asyncio.timeout(10):
            response = await setup.command("WB-1", "ClearCache", {}, timeout=120)
        assert response.status_code == 409
        assert "not connected" in problem(response)["detail"]


async def test_call_error_from_station_is_502(setup: Setup) -> None:
    await add_station(setup.api.node.engine, "WB-1")
    async with setup.station("WB-1") as sim:
        await sim.boot()
        # The simulator has no handler for GetDiagnostics: the ocpp library answers a CALLERROR.
        response = await setup.command("WB-1", "GetDiagnostics", {"location": "ftp://x/"})
        assert response.status_code == 502
        answer = problem(response)
        assert answer["error"] == "CallError" and answer["code"] == "NotImplemented"
        assert answer["detail"].startswith("the station answered CallError NotImplemented")


async def test_pending_station_answers_commands(setup: Setup) -> None:
    engine = setup.api.node.engine
    await add_station(engine, "WB-P")
    from csms.db.engine import session_factory
    from csms.inventory.models import Station

    async with session_factory(engine)() as session:
        station = await session.get(Station, "WB-P")
        assert station is not None
        station.pending_approval = True
        await session.commit()
    async with setup.station("WB-P") as sim:
        assert await sim.boot() == "Pending"
        response = await setup.command("WB-P", "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert response.status_code == 200
        assert response.json() == {"configurationKey": [], "unknownKey": ["HeartbeatInterval"]}
        response = await setup.api.client.get("/api/v1/stations/pending", headers=setup.headers)
        assert [s["id"] for s in response.json()] == ["WB-P"]
        response = await setup.api.client.post(
            "/api/v1/stations/WB-P/approve", headers=setup.headers
        )
        assert response.json() == {
            "id": "WB-P", "approved": True, "was_pending": True, "tariff": "wallbox"
        }
        assert await sim.boot() == "Accepted"


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_password_rotation(setup: Setup, protocol: str) -> None:
    await add_station(setup.api.node.engine, "WB-R", protocol=protocol)
    async with setup.station("WB-R", protocol=protocol) as sim:
        await sim.boot()
        response = await setup.api.client.post(
            "/api/v1/stations/WB-R/password", headers=setup.headers
        )
        assert response.status_code == 200, response.text
        new = response.json()["password"]
        assert len(new) == 40 and sim.memory.password == new
        key = "AuthorizationKey" if protocol == "ocpp1.6" else "SecurityCtrlr.BasicAuthPassword"
        assert sim.memory.configuration[key] == new
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        await open_raw(
            f"ws://127.0.0.1:{setup.server.port}/ocpp",
            "WB-R",
            protocols=[protocol],
            password=PASSWORD,
        )
    ws = await open_raw(
        f"ws://127.0.0.1:{setup.server.port}/ocpp", "WB-R", protocols=[protocol], password=new
    )
    await ws.close()


async def test_overview_and_switch(setup: Setup) -> None:
    await add_station(setup.api.node.engine, "WB-1")
    async with setup.station("WB-1") as sim:
        await sim.boot()
        await sim.status(1, "Available")
        response = await setup.api.client.get("/api/v1/stations/WB-1/ocpp", headers=setup.headers)
        body = response.json()
        assert body["connected"] and body["boot_status"] == "Accepted"
        assert body["connectors"][0]["status"] == "Available"
    response = await setup.api.client.put(
        "/api/v1/stations/WB-1/send-after-boot", json={"enabled": False}, headers=setup.headers
    )
    assert response.json() == {"id": "WB-1", "send_after_boot": False}


async def test_pending_on_demand_over_the_api(setup: Setup) -> None:
    """Re-commissioning: the installer holds a known station in Pending; commands still reach
    it; set back, its next boot is accepted (issue 14 point 4)."""
    await add_station(setup.api.node.engine, "WB-1")
    held = await setup.api.client.put("/api/v1/stations/WB-1/boot-status",
                                      json={"status": "Pending"}, headers=setup.headers)
    assert held.status_code == 200 and held.json()["was"] == "Accepted"
    wrong = await setup.api.client.put("/api/v1/stations/WB-1/boot-status",
                                       json={"status": "Rejected"}, headers=setup.headers)
    assert wrong.status_code == 422
    async with setup.station("WB-1") as sim:
        assert await sim.boot() == "Pending"
        trigger = await setup.command("WB-1", "TriggerMessage",
                                      {"requestedMessage": "BootNotification"})
        assert trigger.status_code == 200 and trigger.json() == {"status": "Accepted"}
        assert sim.memory.received[-1][0] == "TriggerMessage"
        back = await setup.api.client.put("/api/v1/stations/WB-1/boot-status",
                                          json={"status": "Accepted"}, headers=setup.headers)
        assert back.json()["was"] == "Pending"
        assert await sim.boot() == "Accepted"
