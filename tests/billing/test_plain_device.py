"""The paid-use flow driven by a device that is not OCPP: a plain in-memory device of the tests
(the laundry and meter adapters will be real devices; this one only records what it is asked).

Badge, hold, growing energy and time, credit running out and the stop request, a friendly
window, settling, a repeated end, and the concurrent-use limit counted across kinds of device.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from billing import (
    CostShown,
    DeviceRef,
    NewPoint,
    PaidUse,
    PaidUseFlow,
    UseRef,
    UseStatus,
)
from csms.db.engine import session_factory
from csms.inventory.models import Tariff
from csms.inventory.sitefile import import_site
from rfid.authorisation import AuthStatus
from wallet.models import AlertOutbox
from wallet.service import correct, set_policy, wallet_view

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
T0 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # a Monday, 17:00 in Berlin
BADGE = "04112233445566"  # a-03, opening balance 20.00
ACCOUNT = "a-03"


@dataclass
class PlainDevice:
    """A `billing.Device` that remembers what it was asked and always accepts a stop."""

    stops: list[UseRef] = field(default_factory=list)
    costs: list[tuple[UseRef, CostShown]] = field(default_factory=list)

    async def stop(self, use: UseRef) -> bool:
        self.stops.append(use)
        return True

    async def show_cost(self, use: UseRef, cost: CostShown) -> None:
        self.costs.append((use, cost))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Bench:
    engine: AsyncEngine
    flow: PaidUseFlow
    device: PlainDevice
    clock: Clock
    heater: DeviceRef
    tariff: dict[str, Any]

    async def start(self, use_ref: str, badge: str = BADGE) -> int:
        async with self.flow.unit() as unit:
            use = await self.flow.open(unit, self.heater, use_ref, tariff=self.tariff,
                                       currency="EUR")
            await self.flow.add_points(unit, use, [self.reading(use_ref, 0, 0, 0)])
            use.started_at = self.clock.now
            await self.flow.bind_badge(unit, use, self.heater, badge)
            await self.flow.progress(unit, use, cause=f"{use_ref}:0", running=True)
            assert use.id is not None
            return use.id

    def reading(self, use_ref: str, index: int, minute: int, wh: int) -> NewPoint:
        at = T0 + timedelta(minutes=minute)
        return NewPoint(f"{use_ref}:{index}", 0, "meter", at, at, at, register_wh=wh)

    async def grow(self, use_id: int, use_ref: str, index: int, minute: int, wh: int) -> None:
        self.clock.now = T0 + timedelta(minutes=minute)
        async with self.flow.unit() as unit:
            use = await self.flow.lock(unit.db, use_id)
            assert use is not None
            await self.flow.add_points(unit, use, [self.reading(use_ref, index, minute, wh)])
            await self.flow.progress(unit, use, cause=f"{use_ref}:{index}", running=True)
        await self.flow.drain()

    async def end(self, use_id: int, use_ref: str, index: int, minute: int, wh: int) -> None:
        """The device's own end of the use, as a device reports it (repeatable)."""
        self.clock.now = T0 + timedelta(minutes=minute)
        async with self.flow.unit() as unit:
            use = await self.flow.lock(unit.db, use_id)
            assert use is not None
            await self.flow.add_points(unit, use, [self.reading(use_ref, index, minute, wh)])
            if use.status != UseStatus.COMPLETED:
                use.ended_at = T0 + timedelta(minutes=minute)
                await self.flow.settle(unit, use)
        await self.flow.drain()

    async def use(self, use_id: int) -> PaidUse:
        async with session_factory(self.engine)() as db:
            row = await db.get(PaidUse, use_id)
            assert row is not None
            return row

    async def balance(self) -> Decimal:
        async with session_factory(self.engine)() as db:
            return (await wallet_view(db, ACCOUNT, self.clock())).balance


@pytest.fixture
async def bench(engine: AsyncEngine) -> AsyncIterator[Bench]:
    await import_site(engine, yaml.safe_load(DEMO.read_text(encoding="utf-8")))
    clock = Clock()
    flow = PaidUseFlow(session_factory(engine), clock=clock)
    device = PlainDevice()
    flow.register("laundry", device)
    async with session_factory(engine)() as db:
        row = await db.get(Tariff, ("lindenhof", "wallbox"))
        assert row is not None
        tariff = dict(row.document)
    heater = DeviceRef(kind="laundry", device_id="drying-room-1", site_id="lindenhof",
                       tariff_id="wallbox", timezone="Europe/Berlin", location="lindenhof/A")
    yield Bench(engine, flow, device, clock, heater, tariff)
    await flow.drain()


async def test_a_use_is_held_grows_runs_out_of_credit_and_settles_once(bench: Bench) -> None:
    use_id = await bench.start("c1")
    started = await bench.use(use_id)
    assert started.account_id == ACCOUNT and started.badge_uid == BADGE
    assert started.auth_status == AuthStatus.ACCEPTED.value and started.hold_id is not None
    # Energy and time grow; the cost shown grows with them, in the same amounts as the hold.
    await bench.grow(use_id, "c1", 1, 60, 20_000)
    grown = await bench.use(use_id)
    assert grown.energy_wh == 20_000 and grown.duration_s == 3600
    assert grown.live_gross is not None and grown.live_gross > 0
    assert bench.device.costs[-1][1].gross == grown.live_gross
    assert bench.device.stops == []
    # 60 kWh cost more than the 20.00 the household has: the device is asked to stop, once.
    await bench.grow(use_id, "c1", 2, 180, 60_000)
    await bench.grow(use_id, "c1", 3, 180, 60_000)
    stopped = await bench.use(use_id)
    assert "credit_stop" in stopped.flags
    assert [use.use_id for use in bench.device.stops] == [use_id]
    # A device still running a minute later is asked again.
    await bench.grow(use_id, "c1", 4, 181, 60_000)
    assert [use.use_id for use in bench.device.stops] == [use_id, use_id]
    # The device ends the use; its end repeated (a retransmission) moves no money again.
    await bench.end(use_id, "c1", 5, 182, 60_000)
    done = await bench.use(use_id)
    assert done.status == UseStatus.COMPLETED and done.gross is not None
    assert done.gross == done.live_gross
    assert bench.device.costs[-1][1].final and bench.device.costs[-1][1].gross == done.gross
    balance = await bench.balance()
    assert balance == Decimal("20.00") - done.gross
    await bench.end(use_id, "c1", 5, 182, 60_000)
    await bench.end(use_id, "c1", 6, 183, 60_000)
    assert len(bench.device.stops) == 2
    assert await bench.balance() == balance
    assert (await bench.use(use_id)).entry_id == done.entry_id
    async with session_factory(bench.engine)() as db:
        alerts = (await db.exec(select(AlertOutbox.kind).where(
            AlertOutbox.account_id == ACCOUNT))).all()
    assert "laundry_stopped" in alerts


async def test_a_friendly_window_lets_the_use_run_below_zero(bench: Bench) -> None:
    async with session_factory(bench.engine)() as db:
        await correct(db, account_id=ACCOUNT, amount=Decimal("-17.00"), reason="test",
                      staff="test", key="test:a-03", at=bench.clock())
        # 17:00-20:00 in Berlin covers the whole use.
        await set_policy(db, ACCOUNT, {"friendly": {"daily": {"from": "16:00", "to": "20:00"}}},
                         at=bench.clock())
        await db.commit()
    use_id = await bench.start("f1")
    for step in range(1, 6):
        await bench.grow(use_id, "f1", step, step * 10, step * 2000)
    running = await bench.use(use_id)
    assert bench.device.stops == []
    assert "friendly_credit" in running.flags and running.live_gross == Decimal("4.64")
    await bench.end(use_id, "f1", 6, 51, 10_000)
    assert await bench.balance() == Decimal("3.00") - Decimal("4.64")


async def test_the_use_limit_counts_every_kind_of_device(bench: Bench) -> None:
    """A badge busy at the heater is refused at a charger, and accepted again once it ended."""
    use_id = await bench.start("l1")
    charger = DeviceRef(kind="charging", device_id="WB-A-01", site_id="lindenhof",
                        tariff_id="wallbox", timezone="Europe/Berlin", location="lindenhof/A")
    async with session_factory(bench.engine)() as db:
        busy = await bench.flow.authorize(db, charger, BADGE, bench.clock())
    assert busy.decision.status is AuthStatus.CONCURRENT_TX
    await bench.end(use_id, "l1", 1, 30, 5_000)
    async with session_factory(bench.engine)() as db:
        free = await bench.flow.authorize(db, charger, BADGE, bench.clock())
    assert free.decision.status is AuthStatus.ACCEPTED


async def test_a_badge_of_another_format_or_unknown_pays_nothing(bench: Bench) -> None:
    use_id = await bench.start("u1", badge="DEADBEEF")
    unknown = await bench.use(use_id)
    assert unknown.account_id is None and "unknown_badge" in unknown.flags
    await bench.end(use_id, "u1", 1, 30, 5_000)
    assert (await bench.use(use_id)).entry_id is None
    assert await bench.balance() == Decimal("20.00")


async def test_a_device_without_a_tariff_starts_nothing_and_bills_nothing(bench: Bench) -> None:
    """An auto-registered device not yet approved with a tariff: the badge is refused with the
    reason, and a use it reports all the same holds and debits nothing."""
    untariffed = DeviceRef(kind="laundry", device_id="drying-room-2", site_id="lindenhof",
                           tariff_id=None, timezone="Europe/Berlin", location="lindenhof/A")
    async with session_factory(bench.engine)() as db:
        payer = await bench.flow.authorize(db, untariffed, BADGE, bench.clock())
    assert payer.decision.status is AuthStatus.INVALID
    assert payer.decision.reason == "device-no-tariff"
    assert "drying-room-2 has no tariff" in payer.decision.detail
    before = await bench.balance()
    async with bench.flow.unit() as unit:
        use = await bench.flow.open(unit, untariffed, "n1", tariff={}, currency="EUR")
        await bench.flow.add_points(unit, use, [bench.reading("n1", 0, 0, 0)])
        use.started_at = bench.clock.now
        await bench.flow.bind_badge(unit, use, untariffed, BADGE)
        await bench.flow.progress(unit, use, cause="n1:0", running=True)
        assert use.id is not None
        use_id = use.id
    await bench.grow(use_id, "n1", 1, 60, 20_000)
    await bench.end(use_id, "n1", 2, 90, 30_000)
    done = await bench.use(use_id)
    assert done.status == UseStatus.COMPLETED and "no_tariff" in done.flags
    assert done.hold_id is None and done.entry_id is None and done.account_id is None
    assert done.auth_status == AuthStatus.INVALID.value and done.gross is None
    assert await bench.balance() == before
    assert [c for c in bench.device.costs if c[0].use_id == use_id] == []
