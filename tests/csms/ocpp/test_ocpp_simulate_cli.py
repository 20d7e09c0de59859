"""`volthaus simulate` and `volthaus station` against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import func, select

from csms.cli.main import main
from csms.db.engine import session_factory
from csms.ocpp.models import OcppStation, Transaction
from csms.simulator.fleet import FleetPlan, run_fleet
from tests.csms.ocpp.conftest import PASSWORD, Node, add_badge, add_station


async def test_fleet_of_both_versions(lite: Node) -> None:
    for number in range(6):
        await add_station(
            lite.engine, f"SIM-{number:05d}", protocol="ocpp1.6" if number % 2 == 0 else "ocpp2.0.1"
        )
    await add_badge(lite.engine)
    plan = FleetPlan(
        url=lite.url,
        count=6,
        protocol="mixed",
        password=PASSWORD,
        heartbeat_s=0.2,
        meter_interval_s=0.05,
        charge_s=0.3,
        charging_share=1.0,
        duration_s=1.0,
    )
    report = await run_fleet(plan)
    assert report.connected == 6 and report.booted == 6 and not report.errors
    assert {
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "MeterValues",
        "TransactionEvent",
        "StartTransaction",
        "StopTransaction",
    } <= set(report.latencies)
    async with session_factory(lite.engine)() as session:
        ended = (
            await session.exec(
                select(func.count()).select_from(Transaction).where(Transaction.ended)
            )
        ).one()
        booted = (await session.exec(select(func.count()).select_from(OcppStation))).one()
    assert ended >= 6 and booted == 6


async def test_simulate_command(lite: Node, capsys: pytest.CaptureFixture[str]) -> None:
    await add_station(lite.engine, "CLI-00000")
    code = await asyncio.to_thread(
        main,
        [
            "simulate",
            "--url",
            lite.url,
            "-n",
            "1",
            "--prefix",
            "CLI-",
            "--password",
            PASSWORD,
            "--duration",
            "0.5",
            "--heartbeat",
            "0.1",
            "--charging-share",
            "0",
        ],
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 connected, 1 accepted, 0 failed" in out and "Heartbeat" in out


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["simulate", "-n", "0"], "--stations"),
        (["simulate", "--url", "http://x"], "--url"),
        (["simulate", "--power", "-5"], "--power"),
        (["simulate", "--charging-share", "2"], "--charging-share"),
    ],
)
def test_simulate_bad_input(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert f"{field}:" in capsys.readouterr().err


def test_station_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from csms.serve import open_database
    from csms.settings import Settings
    from tests.csms.ocpp.conftest import add_site

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)

    async def prepare() -> None:
        engine = await open_database(Settings())
        await add_site(engine)
        await add_station(engine, "WB-P", password=None, profile=0)
        async with session_factory(engine)() as session:
            from csms.inventory.models import Station

            station = await session.get(Station, "WB-P")
            assert station is not None
            station.pending_approval = True
            await session.commit()
        await engine.dispose()

    asyncio.run(prepare())
    assert main(["station", "pending"]) == 0
    assert capsys.readouterr().out.split("\t")[0] == "WB-P"
    assert main(["station", "approve", "WB-P"]) == 0
    assert capsys.readouterr().out == "approved WB-P\n"
    assert main(["station", "pending"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["station", "send-after-boot", "WB-P", "off"]) == 0
    capsys.readouterr()
    assert main(["station", "show", "WB-P"]) == 0
    assert '"send_after_boot": false' in capsys.readouterr().out
    assert main(["station", "approve", "WB-NONE"]) == 2
    assert "station_id: unknown station 'WB-NONE'" in capsys.readouterr().err
    assert main(["station", "boot-status", "WB-P", "Pending"]) == 0
    assert capsys.readouterr().out == "WB-P: next boot answered Pending\n"

    async def held() -> bool:
        engine = await open_database(Settings())
        async with session_factory(engine)() as session:
            from csms.inventory.models import Station

            station = await session.get(Station, "WB-P")
            assert station is not None
            pending = station.boot_pending
        await engine.dispose()
        return pending

    assert asyncio.run(held()) is True
    assert main(["station", "boot-status", "WB-P", "Accepted"]) == 0
    assert asyncio.run(held()) is False
    assert main(["station", "boot-status", "WB-NONE", "Pending"]) == 2
