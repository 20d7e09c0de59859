"""An auto-registered station has no tariff until an installer approves it with one (API and
CLI), and then bills with exactly that tariff; a station without a tariff bills nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from csms.cli.main import main
from csms.db.engine import session_factory
from csms.inventory.models import Station
from csms.inventory.sitefile import import_site
from csms.serve import open_database
from csms.settings import Settings
from csms.simulator.station import SimStation
from tests.conftest import Api
from tests.csms.charging.conftest import DEMO
from tests.csms.problems import problem_lines

NEW_PASSWORD = "new-station-pass-0001"


def auto_registering_demo() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["site"]["auto_register_stations"] = True
    return document


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_approval_names_the_tariff_the_station_bills_with(
    api: Api, protocol: str
) -> None:
    admin = await api.admin()
    imported = await api.client.post(
        "/api/v1/sites/import", content=json.dumps(auto_registering_demo(), default=str),
        headers=admin | {"Content-Type": "application/json"},
    )
    assert imported.status_code == 200, imported.text
    installer = await api.token("installer", site="lindenhof")
    url = api.node.ocpp_url
    async with SimStation(url, "WB-NEW", protocol=protocol, password=NEW_PASSWORD) as sim:
        assert await sim.boot() == "Pending"
    pending = await api.client.get("/api/v1/stations/pending", headers=installer)
    assert pending.json() == [
        {"id": "WB-NEW", "site_id": "lindenhof", "protocol": protocol, "tariff": None}
    ]

    approve = "/api/v1/stations/WB-NEW/approve"
    missing = await api.client.post(approve, headers=installer)
    assert missing.status_code == 422
    assert problem_lines(missing) == [
        "tariff: required: station 'WB-NEW' has no tariff yet "
        "(tariffs of site 'lindenhof': household, laundry, wallbox)"
    ]
    unknown = await api.client.post(approve, headers=installer, json={"tariff": "nope"})
    assert unknown.status_code == 422
    assert problem_lines(unknown)[0].startswith(
        "tariff: unknown tariff 'nope' on site 'lindenhof'"
    )
    async with session_factory(api.node.engine)() as db:
        station = await db.get(Station, "WB-NEW")
        assert station is not None and station.pending_approval and station.tariff_id is None

    approved = await api.client.post(approve, headers=installer, json={"tariff": "wallbox"})
    assert approved.status_code == 200, approved.text
    assert approved.json() == {
        "id": "WB-NEW", "approved": True, "was_pending": True, "tariff": "wallbox"
    }
    async with SimStation(url, "WB-NEW", protocol=protocol, password=NEW_PASSWORD) as sim:
        assert await sim.boot() == "Accepted"
        done = await sim.charge("04A2B3C4", power_w=11000, duration_s=1800, interval_s=600,
                                time_scale=0.0001)
    sessions = await api.client.get("/api/v1/sessions", headers=admin,
                                    params={"station": "WB-NEW"})
    [session] = sessions.json()
    assert session["transaction_id"] == done.transaction_id
    assert session["status"] == "completed" and session["authorization"] == "Accepted"
    detail = await api.client.get(f"/api/v1/sessions/{session['id']}", headers=admin)
    assert detail.json()["tariff"]["id"] == "wallbox"  # not the site's first, `household`
    assert session["gross"] is not None and float(session["gross"]) > 0


def volthaus_process(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it: its own process (seconds here, for the imports)."""
    env = dict(os.environ, VOLTHAUS_DATABASE_URL=database)
    return subprocess.run(
        [str(Path(sys.executable).with_name("volthaus")), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


Volthaus = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def volthaus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Volthaus:
    """The command through `csms.cli.main.main` in this process, answered as a process would."""

    def run(*args: str, database: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", *args], code, out, err)

    return run


def add_pending_station(database_url: str) -> None:
    async def prepare() -> None:
        engine = await open_database(Settings(database_url=database_url))
        try:
            await import_site(engine, auto_registering_demo())
            async with session_factory(engine)() as db:
                # As the OCPP server registers a station that booted unknown.
                db.add(Station(id="WB-NEW", site_id="lindenhof", protocol="ocpp1.6",
                               security_profile=0, connectors=1, pending_approval=True))
                await db.commit()
        finally:
            await engine.dispose()

    asyncio.run(prepare())


def test_cli_approval_without_a_tariff_exits_2_as_a_process(tmp_path: Path) -> None:
    """The CLI contract as a process sees it: exit 2, nothing on stdout, the field on stderr."""
    database_url = f"sqlite:///{tmp_path / 'approval.db'}"
    add_pending_station(database_url)
    missing = volthaus_process("station", "approve", "WB-NEW", database=database_url)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines()[0].startswith("volthaus: database ")
    assert missing.stderr.splitlines()[1].startswith("volthaus station approve: tariff: required")


def test_cli_approval_names_the_tariff(volthaus: Volthaus, database_url: str) -> None:
    # On both backends: no other test approves a station on PostgreSQL (the API tests above run
    # on SQLite), and in this process each backend costs about a second.
    add_pending_station(database_url)
    pending = volthaus("station", "pending", database=database_url)
    assert pending.stdout == "WB-NEW\tlindenhof\tocpp1.6\t-\n"
    missing = volthaus("station", "approve", "WB-NEW", database=database_url)
    assert missing.returncode == 2 and missing.stdout == ""
    # After the line naming the database (`volthaus: database ...`).
    assert missing.stderr.splitlines()[0].startswith("volthaus: database ")
    assert missing.stderr.splitlines()[1].startswith("volthaus station approve: tariff: required")
    unknown = volthaus("station", "approve", "WB-NEW", "--tariff", "nope",
                       database=database_url)
    assert unknown.returncode == 2
    assert "tariff: unknown tariff 'nope' on site 'lindenhof'" in unknown.stderr
    assert volthaus("station", "pending", database=database_url).stdout.startswith("WB-NEW")
    approved = volthaus("station", "approve", "WB-NEW", "--tariff", "wallbox",
                        database=database_url)
    assert approved.returncode == 0 and approved.stdout == "approved WB-NEW\n"
    shown = json.loads(volthaus("station", "show", "WB-NEW", database=database_url).stdout)
    assert shown["tariff"] == "wallbox" and shown["pending_approval"] is False
    assert volthaus("station", "pending", database=database_url).stdout == ""
