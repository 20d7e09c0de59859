"""`volthaus meter exchange` end to end on a real SQLite file: recorded and audited, billing
continues across it; bad input exits 2 naming the argument and records nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from csms.audit.models import StaffAction
from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from meters.models import Meter, MeterExchange
from meters.readings import meter_state, store_reading
from tests.meters.meter_site import add_site, meter_entry, site_document, values

T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)

    async def prepare() -> None:
        engine = create_engine(url)
        await upgrade_database(engine)
        await add_site(engine, site_document("s1", [meter_entry("m-1", "a-01", 502, 1)]))
        async with session_factory(engine)() as db:
            meter = await db.get(Meter, "m-1")
            assert meter is not None
            await store_reading(db, meter, T0, values(7_000_000))
            await store_reading(db, meter, T0 + timedelta(minutes=1), values(12))
            await db.commit()
        await engine.dispose()

    asyncio.run(prepare())
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["meter", *argv])
    out, err = capsys.readouterr()
    return code, out, err.replace("volthaus: database", "").strip()


def exchanges(url: str) -> tuple[list[MeterExchange], list[str], list[StaffAction]]:
    async def read() -> tuple[list[MeterExchange], list[str], list[StaffAction]]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as db:
                rows = list((await db.exec(select(MeterExchange))).all())
                flags = (await meter_state(db, "m-1", lock=False)).flags
                actions = list((await db.exec(select(StaffAction))).all())
                return rows, flags, actions
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.parametrize(("argv", "message"), [
    (("--at", "yesterday"), "volthaus meter: --at: 'yesterday' is not an ISO 8601 time"),
    (("--at", "2026-12-02T10:00:00"),
     "volthaus meter: --at: '2026-12-02T10:00:00' has no time zone (add Z or +01:00)"),
    (("--old-wh", "7 kWh"), "volthaus meter: --old-wh: '7 kWh' is not a whole number of Wh"),
    (("--new-wh", "-3"), "volthaus meter: --new-wh: must be 0..1000000000000000 Wh, not -3"),
    (("--old-wh", "6999999"),
     "volthaus meter: --old-wh: 6999999 Wh is below the old meter's last billed reading, "
     "7000000 Wh"),
    (("--at", "2099-01-01T00:00:00Z"),
     "volthaus meter: --at: 2099-01-01T00:00:00+00:00 is in the future"),
])
def test_bad_input_exits_2_naming_the_argument(
    database: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    options = {"--at": (T0 + timedelta(seconds=30)).isoformat(), "--old-wh": "7000100",
               "--new-wh": "0"}
    options.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    flat = [part for pair in options.items() for part in pair]
    code, out, err = run(capsys, "exchange", "m-1", *flat)
    assert (code, out) == (2, "")
    assert message in err.splitlines()
    rows, flags, _ = exchanges(database)
    assert rows == [] and flags == ["counter_backwards"]


def test_unknown_meter(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "exchange", "m-9", "--at", T0.isoformat(), "--old-wh", "1",
                       "--new-wh", "0")
    assert code == 2 and "volthaus meter: METER: unknown meter 'm-9'" in err


def test_an_exchange_is_recorded_and_audited(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    at = T0 + timedelta(seconds=30)
    code, out, err = run(capsys, "exchange", "m-1", "--at", at.isoformat(), "--old-wh",
                         "7_000_100", "--new-wh", "0", "--staff", "jo")
    assert code == 0, err
    # (the domain's log line may come before it: the CLI leaves logging as it is)
    assert out.splitlines()[-1] == (
        f"recorded the exchange of m-1 at {at.isoformat()}: old meter ended at 7000100 Wh, new "
        "one started at 0 Wh; billing adds 7000100 Wh to the new register")
    rows, flags, actions = exchanges(database)
    [row] = rows
    assert (row.at, row.old_final_wh, row.new_initial_wh, row.recorded_by) == (
        at, 7_000_100, 0, "cli:jo")
    assert flags == []
    [action] = actions
    assert action.action == "volthaus meter exchange" and action.target == "meter_id=m-1"
    assert action.outcome == "ok" and action.actor == "cli:jo"
