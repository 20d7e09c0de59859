"""The meter poller over emulated SDM630 meters on real Modbus TCP gateways (pymodbus servers on
127.0.0.1) storing in SQLite: one plan per gateway, readings stored with the supply-billing hook
in one transaction, a dead meter backed off without stalling its line, overruns reported, the
meter table read again. The clock is a fake one that the tests (and "slow" hooks) move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.drivers.modbus_gateway import Backoff, ModbusGateways
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.simulator.meters import f32
from csms.simulator.modbus_devices import ModbusDevices
from meters.models import MeterReading
from meters.poller import MeterPoller
from meters.readings import StoredReading, meter_state
from tests.amenities.modbus_fixtures import TEST_TIMEOUT_S, FakeClock
from tests.conftest import JsonLogs
from tests.meters.meter_site import (
    ENERGY_REGISTER,
    add_site,
    meter_entry,
    sdm630_unit,
    set_energy,
    site_document,
)

DEAD = 4


@dataclass
class Site:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    line_a: ModbusDevices  # meters m-1, m-2, m-3 and a dead unit (m-4)
    line_b: ModbusDevices  # meter m-5
    clock: FakeClock
    gateways: ModbusGateways
    hooked: list[StoredReading] = field(default_factory=list)

    def poller(self, **options: object) -> MeterPoller:
        async def on_reading(db: AsyncSession, stored: StoredReading) -> None:
            # the hook sees the reading it is handed, in the same transaction
            row = (await db.exec(select(MeterReading).where(
                col(MeterReading.meter_id) == stored.meter_id,
                col(MeterReading.at) == stored.at))).one()
            assert row.billable == stored.billable
            self.hooked.append(stored)

        arguments: dict[str, object] = {"clock": self.clock, "on_reading": on_reading}
        arguments.update(options)
        return MeterPoller(self.sessions, self.gateways, **arguments)  # type: ignore[arg-type]

    async def readings(self, meter_id: str) -> list[tuple[int | None, bool]]:
        async with self.sessions() as db:
            rows = (await db.exec(select(MeterReading).where(
                col(MeterReading.meter_id) == meter_id).order_by(col(MeterReading.at)))).all()
            return [(r.energy_import_wh, r.billable) for r in rows]

    def requests(self, devices: ModbusDevices, unit: int) -> int:
        return sum(1 for request in devices.requests if request.unit == unit)


def document(site: str, port_a: int, port_b: int, **poll: int) -> dict[str, object]:
    return site_document(site, [
        meter_entry("m-1", "a-01", port_a, 1, poll_s=poll.get("m1")),
        meter_entry("m-2", "a-02", port_a, 2),
        meter_entry("m-3", "a-03", port_a, 3),
        meter_entry("m-4", "a-04", port_a, DEAD),
        meter_entry("m-5", "a-05", port_b, 1),
    ], accounts=("a-01", "a-02", "a-03", "a-04", "a-05"))


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    engine = create_engine(f"sqlite:///{tmp_path / 'meters.db'}")
    await upgrade_database(engine)
    dead = sdm630_unit(DEAD)
    dead.silent = True
    line_a = ModbusDevices(sdm630_unit(1, kwh=1000.0), sdm630_unit(2, kwh=2000.0),
                           sdm630_unit(3, kwh=3000.0), dead)
    line_b = ModbusDevices(sdm630_unit(1, kwh=5000.0))
    clock = FakeClock()
    gateways = ModbusGateways(timeout_s=TEST_TIMEOUT_S, backoff=Backoff(first_s=100),
                              clock=clock)
    async with line_a, line_b:
        await add_site(engine, document("s1", line_a.port, line_b.port))
        yield Site(engine, session_factory(engine), line_a, line_b, clock, gateways)
        await gateways.close()
    await engine.dispose()


async def test_every_meter_read_and_stored_with_its_hook(site: Site) -> None:
    poller = site.poller()
    reports = await poller.poll_once()
    assert poller.meter_ids == ["m-1", "m-2", "m-3", "m-4", "m-5"]
    # one plan per gateway, each reading its meters in turn
    assert sorted(r.reads for r in reports) == [("m-1", "m-2", "m-3", "m-4"), ("m-5",)]
    assert poller.plan("127.0.0.1", site.line_a.port).keys == ["m-1", "m-2", "m-3", "m-4"]
    assert await site.readings("m-1") == [(1_000_000, True)]
    assert await site.readings("m-5") == [(5_000_000, True)]
    assert {s.meter_id for s in site.hooked} == {"m-1", "m-2", "m-3", "m-5"}
    assert all(s.previous_billable is None for s in site.hooked)  # baselines
    assert poller.stored == 4 and poller.failed == 1

    await set_energy(site.line_a, 2, 2000.25)
    first_at = site.clock.now.replace(microsecond=0)
    site.clock.advance(60)
    site.hooked.clear()
    await poller.poll_once()
    [m2] = [s for s in site.hooked if s.meter_id == "m-2"]
    assert m2.billable and m2.energy_wh == 2_000_250 and m2.account_id == "a-02"
    assert m2.previous_billable == (first_at, 2_000_000)
    assert m2.power_w == 1523


async def test_a_dead_meter_is_backed_off_without_stalling_its_line(site: Site) -> None:
    poller = site.poller()
    first = (await poller.poll_once())[0]
    assert first.failed == ("m-4",)
    async with site.sessions() as db:
        state = await meter_state(db, "m-4", lock=False)
        assert state.failures == 1 and state.backed_off_until is not None
        assert "no answer within" in (state.last_failure or "")
    assert site.requests(site.line_a, DEAD) == 1

    for _ in range(2):  # backed off for 100 s: skipped without a request, the others read
        site.clock.advance(60)
        await poller.poll_once()
    assert site.requests(site.line_a, DEAD) == 2  # tried again once its 100 s had passed
    assert [len(await site.readings(m)) for m in ("m-1", "m-2", "m-3", "m-4")] == [3, 3, 3, 0]
    async with site.sessions() as db:
        assert (await meter_state(db, "m-4", lock=False)).failures == 3

    site.line_a.units[DEAD].silent = False  # back on the line
    site.clock.advance(400)
    await poller.poll_once()
    assert await site.readings("m-4") == [(1_000_000, True)]
    async with site.sessions() as db:
        state = await meter_state(db, "m-4", lock=False)
        assert (state.failures, state.backed_off_until, state.last_failure) == (0, None, None)


async def test_an_overrunning_cycle_is_reported(site: Site, json_logs: JsonLogs) -> None:
    slow_for = {"m-2"}

    async def slow_storage(db: AsyncSession, stored: StoredReading) -> None:
        if stored.meter_id in slow_for:
            site.clock.advance(75)  # storing took longer than the whole cycle

    poller = site.poller(on_reading=slow_storage)
    reports = await poller.poll_once()
    line_a = next(r for r in reports if "m-1" in r.reads)
    assert line_a.overrun and line_a.took_s >= 75
    assert poller.overruns == 1
    [event] = json_logs.lines("meter_poll_overrun")
    assert event["gateway"] == f"127.0.0.1:{site.line_a.port}"
    assert event["cycle_s"] == 60 and event["meters"] == 4 and event["took_s"] >= 75
    # every meter was still read
    assert [len(await site.readings(m)) for m in ("m-1", "m-2", "m-3", "m-5")] == [1, 1, 1, 1]
    slow_for.clear()
    site.clock.advance(60)
    await poller.poll_once()
    assert poller.overruns == 1


async def test_a_reading_and_its_hook_commit_together(site: Site, json_logs: JsonLogs) -> None:
    async def billing_fails_for_m1(db: AsyncSession, stored: StoredReading) -> None:
        if stored.meter_id == "m-1":
            raise RuntimeError("wallet locked")

    poller = site.poller(on_reading=billing_fails_for_m1)
    await poller.poll_once()
    assert await site.readings("m-1") == []  # neither the reading nor its debit
    assert await site.readings("m-2") == [(2_000_000, True)]
    assert poller.lost == 1 and poller.stored == 3
    assert [e["meter"] for e in json_logs.lines("meter_reading_not_stored")] == ["m-1"]
    # the cycle's one transaction was rolled back and its readings stored one by one
    assert len(json_logs.lines("meter_cycle_stored_one_by_one")) == 1


async def test_nan_from_the_meter_is_stored_flagged(site: Site) -> None:
    poller = site.poller()
    await poller.poll_once()
    await site.line_a.set_registers(3, "input", ENERGY_REGISTER, f32(float("nan")))
    site.clock.advance(60)
    await poller.poll_once()
    assert await site.readings("m-3") == [(3_000_000, True), (None, False)]
    [stored] = [s for s in site.hooked if s.meter_id == "m-3" and not s.billable]
    assert stored.flags == ("not_a_number",)


async def test_periods_and_reloads(site: Site) -> None:
    poller = site.poller(site_id="s1")
    await poller.poll_once()
    # the site file gives m-1 a 20 s period: its line's cycle becomes 20 s, m-1 is read every
    # cycle and the 60 s meters every third
    await add_site(site.engine, document("s1", site.line_a.port, site.line_b.port, m1=20))
    await poller.reload()
    plan = poller.plan("127.0.0.1", site.line_a.port)
    assert plan.cycle_s == 20
    reads = []
    for _ in range(3):
        site.clock.advance(20)
        reads.append(sorted(r for report in await poller.poll_once() for r in report.reads))
    # m-1 was polled anew (due at once) and then every 20 s; the others 60 s after their last
    assert reads == [["m-1"], ["m-1"], ["m-1", "m-2", "m-3", "m-4", "m-5"]]
    # another site's meters are not this poller's
    await add_site(site.engine, site_document("s2", [
        meter_entry("m-x", "a-01", site.line_b.port, 1)]))
    await poller.reload()
    assert "m-x" not in poller.meter_ids
    # a meter moved to another gateway leaves the old plan
    moved = document("s1", site.line_a.port, site.line_b.port)
    moved["meters"][4]["modbus"]["port"] = site.line_a.port  # type: ignore[index]
    moved["meters"][4]["modbus"]["unit"] = 2  # type: ignore[index]
    await add_site(site.engine, moved)
    await poller.reload()
    with pytest.raises(KeyError):
        poller.plan("127.0.0.1", site.line_b.port)
    assert "m-5" in poller.plan("127.0.0.1", site.line_a.port).keys


async def test_run_polls_until_cancelled(site: Site) -> None:
    poller = site.poller(reload_s=3600)
    naps: list[float] = []
    enough = asyncio.Event()

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if seconds < 3600:  # a line's pause: the fake time passes
            site.clock.advance(seconds)
        if len(await site.readings("m-5")) >= 3:
            enough.set()
        await asyncio.sleep(0.01 if seconds < 3600 else 3600)

    task = asyncio.create_task(poller.run(sleep=sleep))
    await asyncio.wait_for(enough.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await site.readings("m-5") == [(5_000_000, True)] * len(await site.readings("m-5"))
    # each line waits out the rest of its 60 s cycle
    assert any(0 < nap <= 60 for nap in naps)
    assert poller.cycle_seconds and poller.overruns == 0
