"""Laundry end to end below HTTP: taps, a Shelly Gen2 relay emulator on 127.0.0.1 playing recorded
power profiles, the cycle controller, and the money through the one paid-use flow, on SQLite
and PostgreSQL. Time is one manual clock shared by the server and the emulated device."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from amenities.cycle import CycleSettings
from amenities.drivers.pool import DriverPool
from amenities.laundry import LaundryService, pool_devices
from amenities.machines import machine_views
from amenities.models import Amenity, AmenityCycle, AmenityStatus
from billing import PaidUse, PaidUseFlow, UseStatus, usage_document, usage_of
from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site
from csms.inventory.tariffs import tariff_document
from csms.simulator.httpdevice import ManualClock
from csms.simulator.shelly import ShellyGen2Emulator
from tests.amenities.power_profiles import DRYER, NEVER_STARTED, WASHER, Profile, samples
from wallet.models import AlertOutbox, HoldRecord
from wallet.service import wallet_view

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
VOLTHAUS = Path(sys.executable).parent / "volthaus"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday morning
KELLER = "04A2B3C4"  # a-01, 50.00
KELLER_2 = "04A2B3C5"  # a-01 as well
YILMAZ = "8A1F2C3D"  # a-02, 30.00

# Time, energy and a flat fee: what a dryer on a metered socket is often priced by.
MIX_TARIFF = {
    "id": "dryer-mix", "name": "Trockner", "currency": "EUR", "vat_percent": "19",
    "components": [
        {"dimension": "flat", "price": "0.50"},
        {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.40"}]},
        {"dimension": "time", "tiers": [{"from_s": 0, "price": "0.60"}], "step_s": 60},
    ],
}


class LinkedClock:
    """The server's clock (aware datetimes) and the device's (seconds), moved together."""

    def __init__(self) -> None:
        self.device = ManualClock(1_000.0)

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.device() - 1_000.0)

    def set(self, at: datetime) -> None:
        target = 1_000.0 + (at - T0).total_seconds()
        self.device.advance(max(0.0, target - self.device()))


@dataclass
class Room:
    engine: AsyncEngine
    clock: LinkedClock
    shelly: ShellyGen2Emulator
    pool: DriverPool
    flow: PaidUseFlow
    laundry: LaundryService

    def restart(self) -> LaundryService:
        """A new server process on the same database (the old one is gone without a word)."""
        self.flow = PaidUseFlow(session_factory(self.engine), clock=self.clock)
        self.pool = DriverPool(timeout_s=0.5)
        self.laundry = LaundryService(self.flow, pool_devices(self.pool),
                                      tariff_document)
        return self.laundry

    async def tap(self, badge: str, amenity: str = "washer-1") -> Any:
        answer = await self.laundry.tap(site_id="lindenhof", reader_id="reader-1", id_tag=badge,
                                        amenity_id=amenity)
        await self.flow.drain()
        return answer

    async def cycle(self, amenity: str = "washer-1") -> AmenityCycle:
        async with session_factory(self.engine)() as db:
            rows = (await db.exec(select(AmenityCycle)
                                  .where(col(AmenityCycle.amenity_id) == amenity)
                                  .order_by(col(AmenityCycle.id).desc()))).all()
            return rows[0]

    async def use(self, use_id: int | None) -> PaidUse:
        async with session_factory(self.engine)() as db:
            use = await db.get(PaidUse, use_id)
            assert use is not None
            return use

    async def status(self, amenity: str = "washer-1") -> AmenityStatus | None:
        async with session_factory(self.engine)() as db:
            return await db.get(AmenityStatus, amenity)

    async def balance(self, account: str) -> tuple[Decimal, Decimal]:
        async with session_factory(self.engine)() as db:
            view = await wallet_view(db, account, self.clock())
            return view.balance, view.holds

    async def alerts(self, kind: str) -> list[AlertOutbox]:
        async with session_factory(self.engine)() as db:
            return list((await db.exec(select(AlertOutbox)
                                       .where(col(AlertOutbox.kind) == kind))).all())

    async def play(self, profile: Profile, channel: int, cycle_id: int, *,
                   start: datetime | None = None, poll_s: int = 60, until_closed: bool = True
                   ) -> None:
        """The machine draws the profile; the controller reads it every poll_s."""
        for at, watts in samples(profile, start or self.clock(), poll_s):
            self.clock.set(at)
            self.shelly.set_power(channel, watts)
            await self.laundry.poll(cycle_id)
            await self.flow.drain()
            if until_closed and (await self.cycle_by_id(cycle_id)).state not in (
                "authorised", "running", "ending"
            ):
                return

    async def cycle_by_id(self, cycle_id: int) -> AmenityCycle:
        async with session_factory(self.engine)() as db:
            row = await db.get(AmenityCycle, cycle_id)
            assert row is not None
            return row


@pytest.fixture
async def room(engine: AsyncEngine) -> AsyncIterator[Room]:
    clock = LinkedClock()
    shelly = ShellyGen2Emulator(channels=2, clock=clock.device)
    await shelly.start()
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["tariffs"].append(MIX_TARIFF)
    for amenity in document["amenities"]:
        amenity["relay"]["port"] = shelly.port
        amenity.pop("cycle", None)  # the contract's defaults, not the demo's quick ones
        if amenity["id"] == "dryer-1":
            amenity["tariff"] = "dryer-mix"
    await import_site(engine, document)
    flow = PaidUseFlow(session_factory(engine), clock=clock)
    pool = DriverPool(timeout_s=0.5)
    laundry = LaundryService(flow, pool_devices(pool), tariff_document)
    room = Room(engine, clock, shelly, pool, flow, laundry)
    yield room
    await room.flow.drain()
    await room.pool.close()
    await shelly.stop()


async def price_cli(room: Room, use: PaidUse, tmp_path: Path) -> dict[str, Any]:
    """`volthaus price` of the use's tariff and its stored usage, as a resident could run it."""
    async with session_factory(room.engine)() as db:
        built = await usage_of(db, use)
    assert built is not None
    (tmp_path / "tariff.json").write_text(json.dumps(use.tariff))
    (tmp_path / "usage.json").write_text(json.dumps(usage_document(built.usage)))
    done = subprocess.run([str(VOLTHAUS), "price", str(tmp_path / "tariff.json"),
                           str(tmp_path / "usage.json")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


async def test_a_washer_cycle_is_switched_detected_billed_once_and_announced(
    room: Room, tmp_path: Path
) -> None:
    answer = await room.tap(KELLER)
    assert (answer.decision, answer.reason) == ("accepted", "accepted")
    assert "Waschmaschine washer-1" in answer.message["de"]
    assert room.shelly.output(0) is True  # the relay is on, with its dead-man timer running
    assert room.shelly.channel(0).timer_duration == 120
    cycle = await room.cycle()
    assert cycle.state == "authorised"
    balance, held = await room.balance("a-01")
    assert (balance, held) == (Decimal("50.00"), Decimal("5.00"))

    await room.play(WASHER, 0, cycle.id or 0)
    cycle = await room.cycle()
    assert (cycle.state, cycle.end_reason) == ("done", "power_off"), (
        (await room.use(cycle.use_id)).flags)
    assert room.shelly.output(0) is False and cycle.released
    use = await room.use(cycle.use_id)
    assert use.status == UseStatus.COMPLETED
    assert use.gross == Decimal("2.38")  # the demo's flat 2.00 net per cycle
    assert use.started_at == cycle.started_at and use.ended_at == cycle.ended_at
    assert use.energy_wh == (cycle.last_energy_wh or 0) - (cycle.tap_energy_wh or 0) or (
        use.energy_wh > 1000)
    assert Decimal((await price_cli(room, use, tmp_path))["gross"]) == use.gross
    assert await room.balance("a-01") == (Decimal("47.62"), Decimal("0.00"))
    done = await room.alerts("laundry_done")
    assert [(a.account_id, a.payload["amenity"], a.payload["cost"]) for a in done] == [
        ("lindenhof:a-01" if done and done[0].account_id != "a-01" else "a-01", "washer-1",
         "2.38")]

    # Polling again, replaying, restarting: nothing moves twice.
    await room.laundry.poll(cycle.id or 0)
    room.restart()
    await room.laundry.poll(cycle.id or 0)
    assert await room.balance("a-01") == (Decimal("47.62"), Decimal("0.00"))
    views = await _views(room)
    assert views["washer-1"].state == "free"


async def _views(room: Room) -> dict[str, Any]:
    async with session_factory(room.engine)() as db:
        return {v.id: v for v in await machine_views(db, "lindenhof", room.clock())}


async def test_a_dryer_priced_by_time_and_energy_shows_its_live_cost_and_the_debit_is_the_price(
    room: Room, tmp_path: Path
) -> None:
    await room.tap(YILMAZ, "dryer-1")
    cycle = await room.cycle("dryer-1")
    shown = []
    start = room.clock()
    for index, (at, watts) in enumerate(samples(DRYER, start, 60)):
        room.clock.set(at)
        room.shelly.set_power(1, watts)
        await room.laundry.poll(cycle.id or 0)
        if index % 10 == 5:
            view = (await _views(room))["dryer-1"]
            if view.cycle is not None:
                shown.append((view.state, view.cycle.running_s, view.cycle.cost_gross))
        if (await room.cycle_by_id(cycle.id or 0)).state == "done":
            break
    await room.flow.drain()
    costs = [cost for _, _, cost in shown if cost is not None]
    assert len(costs) >= 5
    assert costs == sorted(costs) and costs[0] < costs[-1]
    assert {state for state, _, _ in shown} <= {"running", "ending"}
    cycle = await room.cycle("dryer-1")
    assert cycle.state == "done"
    use = await room.use(cycle.use_id)
    bill = await price_cli(room, use, tmp_path)
    assert Decimal(bill["gross"]) == use.gross
    # The quiet wait that found the end is not billed: the final bill can be below the last
    # live cost, never above the cost of the whole cycle.
    assert use.gross is not None and costs[0] < use.gross <= costs[-1]
    time_line = sum(line["quantity"] for line in bill["lines"] if line["dimension"] == "time")
    assert time_line >= (cycle.ended_at - cycle.started_at).total_seconds()  # type: ignore[operator]
    assert await room.balance("a-02") == (Decimal("30.00") - use.gross, Decimal("0.00"))


async def test_a_machine_never_started_is_released_and_costs_nothing(room: Room) -> None:
    await room.tap(KELLER)
    cycle = await room.cycle()
    await room.play(NEVER_STARTED, 0, cycle.id or 0, poll_s=30)
    cycle = await room.cycle()
    assert (cycle.state, cycle.end_reason) == ("abandoned", "abandoned")
    assert room.shelly.output(0) is False
    use = await room.use(cycle.use_id)
    assert use.status == UseStatus.COMPLETED and use.gross is None and use.entry_id is None
    assert await room.balance("a-01") == (Decimal("50.00"), Decimal("0.00"))
    async with session_factory(room.engine)() as db:
        hold = await db.get(HoldRecord, use.hold_id)
        assert hold is not None and hold.status == "released"
    assert await room.alerts("laundry_done") == []


async def test_a_double_tap_starts_nothing_new_and_another_household_is_refused(
    room: Room
) -> None:
    first = await room.tap(KELLER)
    cycle = await room.cycle()
    again = await room.tap(KELLER)
    partner = await room.tap(KELLER_2)  # the same household's second badge
    assert [a.decision for a in (first, again, partner)] == ["accepted"] * 3
    assert again.reason == partner.reason == "already-open"
    await room.play(WASHER[:4], 0, cycle.id or 0, until_closed=False)
    before = await room.cycle()
    neighbour = await room.tap(YILMAZ)
    assert (neighbour.decision, neighbour.reason) == ("refused", "in-use")
    assert "anderen Haushalt" in neighbour.message["de"]
    after = await room.cycle()
    assert (after.id, after.state, after.use_id) == (before.id, before.state, before.use_id)
    assert room.shelly.output(0) is True
    async with session_factory(room.engine)() as db:
        cycles = (await db.exec(select(AmenityCycle))).all()
        holds = (await db.exec(select(HoldRecord))).all()
    assert len(cycles) == 1 and len(holds) == 1
    assert await room.balance("a-02") == (Decimal("30.00"), Decimal("0.00"))


async def test_credit_running_out_stops_a_time_and_energy_priced_machine(room: Room) -> None:
    async with session_factory(room.engine)() as db:
        from wallet.service import correct

        await correct(db, account_id="a-02", amount=Decimal("-29.00"), key="test:drain",
                      reason="test", staff="test", at=room.clock())
        await db.commit()
    await room.tap(YILMAZ, "dryer-1")
    cycle = await room.cycle("dryer-1")
    await room.play(DRYER, 1, cycle.id or 0)
    cycle = await room.cycle("dryer-1")
    assert (cycle.state, cycle.end_reason) == ("done", "stopped")
    assert room.shelly.output(1) is False
    use = await room.use(cycle.use_id)
    assert "credit_stop" in use.flags
    balance, held = await room.balance("a-02")
    assert held == Decimal("0.00")
    assert use.gross is not None and Decimal("0.90") <= use.gross <= Decimal("1.00") + Decimal(
        "0.50")
    assert balance == Decimal("1.00") - use.gross
    assert [a.payload["device_id"] for a in await room.alerts("laundry_stopped")] == ["dryer-1"]


async def test_an_unreachable_relay_is_a_fault_never_a_charge(room: Room) -> None:
    room.shelly.unreachable = True
    answer = await room.tap(KELLER)
    assert (answer.decision, answer.reason) == ("refused", "relay-failed")
    status = await room.status()
    assert status is not None and status.fault == "relay_unreachable"
    assert await room.balance("a-01") == (Decimal("50.00"), Decimal("0.00"))
    faults = await room.alerts("device_fault")
    assert [(a.audience, a.account_id, a.payload["fault"]) for a in faults] == [
        ("staff", None, "relay_unreachable")]
    assert (await _views(room))["washer-1"].state == "out_of_order"
    refused = await room.tap(KELLER)
    assert refused.reason == "out-of-order"
    room.shelly.unreachable = False
    await room.laundry.reconcile("washer-1")
    assert (await room.status()).fault is None  # type: ignore[union-attr]
    assert (await room.tap(KELLER)).decision == "accepted"
    assert len(await room.alerts("device_fault_cleared")) == 1


async def test_readings_lost_mid_cycle_end_it_billed_to_the_last_reading(room: Room) -> None:
    await room.tap(YILMAZ, "dryer-1")
    cycle = await room.cycle("dryer-1")
    await room.play(DRYER[:3], 1, cycle.id or 0, until_closed=False)
    running = await room.cycle("dryer-1")
    assert running.state == "running"
    last = running.last_reading_at
    room.shelly.unreachable = True
    settings = CycleSettings()
    step = 0
    while step < 60:
        step += 1
        room.clock.set(room.clock() + timedelta(seconds=30))
        await room.laundry.poll(cycle.id or 0)
        if (await room.cycle("dryer-1")).state != "running":
            break
    await room.flow.drain()
    ended = await room.cycle("dryer-1")
    assert (ended.state, ended.end_reason, ended.ended_at) == ("done", "readings_lost", last)
    assert step * 30 >= settings.readings_lost_after_s
    use = await room.use(ended.use_id)
    assert use.ended_at == last and use.status == UseStatus.COMPLETED
    assert (await room.status("dryer-1")).fault in (  # type: ignore[union-attr]
        "readings_lost", "relay_unreachable")
    # Back on the network, the relay is switched off and the machine is free again.
    room.shelly.unreachable = False
    await room.laundry.reconcile("dryer-1")
    assert room.shelly.output(1) is False
    assert (await _views(room))["dryer-1"].state == "free"


async def test_a_restart_mid_cycle_resumes_from_storage_and_bills_once(room: Room) -> None:
    await room.tap(KELLER)
    cycle = await room.cycle()
    half = len(WASHER) // 2
    await room.play(WASHER[:half], 0, cycle.id or 0, until_closed=False)
    await room.flow.drain()
    room.restart()
    await room.play(WASHER[half:], 0, cycle.id or 0, start=room.clock())
    cycle = await room.cycle()
    assert cycle.state == "done"
    use = await room.use(cycle.use_id)
    assert use.gross == Decimal("2.38")
    assert await room.balance("a-01") == (Decimal("47.62"), Decimal("0.00"))
    async with session_factory(room.engine)() as db:
        entries = (await db.exec(select(HoldRecord))).all()
    assert [h.status for h in entries] == ["settled"]


async def test_a_relay_that_reads_on_after_an_off_is_a_fault(room: Room) -> None:
    await room.tap(KELLER)
    cycle = await room.cycle()
    room.shelly.set_stuck(0, True)
    await room.play(WASHER, 0, cycle.id or 0)
    assert (await room.cycle()).state == "done"
    status = await room.status()
    assert status is not None and status.fault == "relay_stuck_on"
    assert [a.payload["fault"] for a in await room.alerts("device_fault")] == ["relay_stuck_on"]
    assert (await _views(room))["washer-1"].state == "out_of_order"
    assert (await room.use((await room.cycle()).use_id)).gross == Decimal("2.38")
    room.shelly.set_stuck(0, False)
    await room.laundry.reconcile("washer-1")
    assert room.shelly.output(0) is False
    assert (await room.status()).fault is None  # type: ignore[union-attr]


async def test_amenity_rows_keep_the_contract_defaults(room: Room) -> None:
    async with session_factory(room.engine)() as db:
        washer = await db.get(Amenity, "washer-1")
    assert washer is not None and CycleSettings.of(washer.cycle) == CycleSettings()


async def test_the_wallets_modes_and_friendly_hours_apply_as_for_charging(room: Room) -> None:
    from wallet.service import set_policy

    async with session_factory(room.engine)() as db:
        await set_policy(db, "a-02", {"mode": "blocked"}, staff="test", at=room.clock())
        await db.commit()
    blocked = await room.tap(YILMAZ, "dryer-1")
    assert blocked.decision == "refused" and room.shelly.output(1) is False
    # Friendly hours all day: a dryer that outruns the credit is not stopped.
    async with session_factory(room.engine)() as db:
        await set_policy(db, "a-02", {"mode": "prepaid", "friendly": {
            "daily": {"from": "00:00", "to": "23:59"}}}, staff="test", at=room.clock())
        from wallet.service import correct

        await correct(db, account_id="a-02", amount=Decimal("-28.50"), key="test:low",
                      reason="test", staff="test", at=room.clock())
        await db.commit()
    assert (await room.tap(YILMAZ, "dryer-1")).decision == "accepted"
    cycle = await room.cycle("dryer-1")
    await room.play(DRYER, 1, cycle.id or 0)
    cycle = await room.cycle("dryer-1")
    assert (cycle.state, cycle.end_reason) == ("done", "power_off")
    use = await room.use(cycle.use_id)
    assert "credit_stop" not in use.flags and "friendly_credit" in use.flags
    assert use.gross is not None and use.gross > Decimal("1.50")
    assert (await room.balance("a-02"))[0] == Decimal("1.50") - use.gross
