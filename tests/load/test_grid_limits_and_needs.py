"""The grid operator's limits over the API and the CLI (bad input named, nothing stored), the
cars' charging needs over OCPP 2.0.1, and the charging profiles Volthaus sends being valid OCPP
for both versions (checked against the specs' schemas, and honoured by real clients)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import select

from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.inventory.sitefile import import_site, import_site_file
from csms.load.grid_limits import amperes_of
from csms.load.models import ChargingNeed, GridLimit
from csms.ocpp.commands import StationGateway
from csms.ocpp.wire import schema_problems
from csms.simulator.station import SimStation
from tests.conftest import Api

PASSWORD = "grid-password-0001"


def document() -> dict[str, Any]:
    return {
        "site": {"id": "g", "name": "G", "timezone": "Europe/Berlin", "currency": "EUR",
                 "country": "DE"},
        "tariffs": [{"id": "wb", "currency": "EUR", "vat_percent": "19", "components": [
            {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.40"}]}]}],
        "stations": [{"id": "WB-G-1", "protocol": "ocpp1.6", "security_profile": 1,
                      "password": PASSWORD, "connectors": 1, "tariff": "wb"},
                     {"id": "WB-G-2", "protocol": "ocpp2.0.1", "security_profile": 1,
                      "password": PASSWORD, "connectors": 1, "tariff": "wb"}],
        "load": {"limit_a": 40, "building_meter": {
            "profile": "eastron-sdm630", "modbus": {"host": "127.0.0.1", "port": 1}}},
    }


def test_kilowatts_become_amperes_per_phase() -> None:
    assert amperes_of(4200, 3) == Decimal("6.0")
    assert amperes_of(4200, 1) == Decimal("18.2")


async def test_grid_limits_over_the_api(api: Api) -> None:
    await import_site(api.node.engine, document())
    owner = await api.token("owner", site="g")
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    made = await api.client.post("/api/v1/sites/g/grid-limits", headers=owner, json={
        "station_id": "WB-G-1", "kw": "4.2", "until": until, "reason": "§14a EnWG"})
    assert made.status_code == 201, made.text
    assert made.json()["limit_a"] == "6.0"
    site_wide = await api.client.post("/api/v1/sites/g/grid-limits", headers=owner, json={
        "amps": "20", "until": until})
    assert site_wide.status_code == 201
    for body, field in [
        ({"kw": "4.2", "amps": "6", "until": until}, "limit"),
        ({"until": until}, "limit"),
        ({"kw": "4.2", "until": "2020-01-01T00:00:00Z"}, "until"),
        ({"station_id": "WB-NOPE", "kw": "4.2", "until": until}, "station"),
    ]:
        refused = await api.client.post("/api/v1/sites/g/grid-limits", headers=owner, json=body)
        assert refused.status_code == 422, body
        assert refused.json()["problems"][0]["path"] == field
    listed = (await api.client.get("/api/v1/sites/g/grid-limits", headers=owner)).json()
    assert len(listed) == 2
    lifted = await api.client.delete(f"/api/v1/sites/g/grid-limits/{made.json()['id']}",
                                     headers=owner)
    assert lifted.json()["lifted_at"] is not None
    admin = await api.admin()
    view = (await api.client.get("/api/v1/sites/g/load", headers=admin)).json()
    assert view["settings"]["limit_a"] == "40"
    resident_site = await api.token("installer", site="g")
    assert (await api.client.get("/api/v1/sites/g/load", headers=resident_site)).status_code == 200


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(document()))

    async def prepare() -> None:
        engine = create_engine(url)
        await upgrade_database(engine)
        await import_site_file(engine, site_file)
        await engine.dispose()

    asyncio.run(prepare())
    return url


def stored_limits(url: str) -> list[GridLimit]:
    async def read() -> list[GridLimit]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as db:
                return list((await db.exec(select(GridLimit))).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_grid_limits_on_the_command_line(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", "limit", "--site", "g", "--station", "WB-G-2", "--kw", "4.2",
                 "--for", "2h"]) == 0
    assert "6.0 A per phase" in capsys.readouterr().out
    for argv, flag in [
        (["--kw", "4.2"], "--until"),
        (["--kw", "x", "--for", "1h"], "--kw"),
        (["--kw", "4.2", "--for", "soon"], "--for"),
        (["--kw", "4.2", "--amps", "6", "--for", "1h"], "--kw"),
        (["--station", "WB-X", "--kw", "4.2", "--for", "1h"], "--station"),
    ]:
        assert main(["load", "limit", "--site", "g", *argv]) == 2
        assert f"volthaus load: {flag}:" in capsys.readouterr().err
    rows = stored_limits(database)
    assert len(rows) == 1
    assert main(["load", "lift", str(rows[0].id)]) == 0
    assert stored_limits(database)[0].lifted_at is not None


async def test_charging_needs_are_accepted_and_stored_and_profiles_reach_both_versions(
    api: Api,
) -> None:
    await import_site(api.node.engine, document())
    old = SimStation(api.node.ocpp_url, "WB-G-1", protocol="ocpp1.6", password=PASSWORD)
    new = SimStation(api.node.ocpp_url, "WB-G-2", protocol="ocpp2.0.1", password=PASSWORD)
    async with old, new:
        await old.boot()
        await new.boot()
        departure = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        from ocpp.v201 import call as call201

        reply = await new.client.call(call201.NotifyEVChargingNeeds(  # type: ignore[union-attr]
            evse_id=1, charging_needs={
                "requested_energy_transfer": "AC_three_phase",
                "departure_time": departure.isoformat().replace("+00:00", "Z"),
                "ac_charging_parameters": {"energy_amount": 22000, "ev_min_current": 6,
                                           "ev_max_current": 16, "ev_max_voltage": 400}}))
        assert reply.status == "Accepted"
        async with session_factory(api.node.engine)() as db:
            need = await db.get(ChargingNeed, ("WB-G-2", 1))
        assert need is not None and need.energy_wh == 22000 and need.departure_at == departure
        gateway = StationGateway(api.node.bus)
        assert await gateway.set_charging_limit("WB-G-1", 1, 10, 3) is True
        assert await gateway.set_charging_limit("WB-G-2", 1, 0, 3) is True
        assert old.memory.default_limits[1] == 10.0 and new.memory.default_limits[1] == 0.0
        new.memory.reject_profiles = True
        assert await gateway.set_charging_limit("WB-G-2", 1, 8, 3) is False
        assert await gateway.set_charging_limit("WB-NOT-THERE", 1, 8, 3) is False
    # The clients validated what they received against their schemas; the server's own check:
    assert schema_problems("ocpp1.6", "SetChargingProfile", {
        "connectorId": 1, "csChargingProfiles": {
            "chargingProfileId": 1001, "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 10, "numberPhases": 3}]}}}) == []
