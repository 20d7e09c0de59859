"""Prepaid supply end to end with an emulated flat: a living SDM630 behind a Modbus TCP gateway
whose supply hangs on a coil of a relay module on the same line, the real poller, supply
billing through the flow, and supply control switching the coil. One manual clock drives the
meter's load and the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from amenities.drivers.pool import DriverPool
from billing import PaidUseFlow
from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site
from csms.inventory.tariffs import tariff_document
from csms.simulator.httpdevice import ManualClock
from csms.simulator.meters import EmulatedMeter, MeterLine, link_supply
from csms.simulator.modbus_devices import EmulatedUnit
from meters.models import MeterState, SupplySwitch
from meters.on_gateway import meter_on_gateway
from meters.poller import MeterPoller
from meters.supply_billing import SupplyBilling
from meters.supply_control import SupplyControl, SupplyOptions
from wallet.models import AlertOutbox
from wallet.service import set_policy, top_up_cash, wallet_view

T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Berlin
RELAY_UNIT = 10


class LinkedClock:
    def __init__(self) -> None:
        self.device = ManualClock(1_000.0)

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.device() - 1_000.0)

    def advance(self, seconds: float) -> None:
        self.device.advance(seconds)


@dataclass
class Flat:
    engine: AsyncEngine
    clock: LinkedClock
    meter: EmulatedMeter
    line: MeterLine
    relay: EmulatedUnit
    poller: MeterPoller
    control: SupplyControl

    async def step(self, minutes: int) -> None:
        """Time passes; the poller reads, supply control decides."""
        self.clock.advance(minutes * 60)
        await self.poller.poll_once()
        await self.control.control_once()

    async def coil(self) -> bool:
        return (await self.line.coils(RELAY_UNIT, 0, 1))[0]

    async def state(self) -> MeterState:
        async with session_factory(self.engine)() as db:
            state = await db.get(MeterState, "m-1")
            assert state is not None
            return state

    async def available(self) -> Decimal:
        async with session_factory(self.engine)() as db:
            return (await wallet_view(db, "f-1", self.clock())).available

    async def alerts(self) -> list[str]:
        async with session_factory(self.engine)() as db:
            rows = (await db.exec(select(AlertOutbox).order_by(col(AlertOutbox.id)))).all()
            return [row.kind for row in rows]

    async def switches(self) -> list[tuple[bool, str, bool]]:
        async with session_factory(self.engine)() as db:
            rows = (await db.exec(select(SupplySwitch).order_by(col(SupplySwitch.id)))).all()
            return [(row.on, row.reason, row.ok) for row in rows]

    async def policy(self, document: dict[str, Any]) -> None:
        async with session_factory(self.engine)() as db:
            await set_policy(db, "f-1", document, staff="test", at=self.clock())
            await db.commit()


def site(port: int) -> dict[str, Any]:
    return {
        "site": {"id": "s", "name": "Haus S", "timezone": "Europe/Berlin", "currency": "EUR",
                 "country": "DE", "region": "BY"},
        "tariffs": [{"id": "strom", "currency": "EUR", "vat_percent": "19", "components": [
            {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.40"}]}]}],
        "accounts": [{"id": "f-1", "name": "Flat 1", "opening_balance": "3.00",
                      "email": "flat1@example.org"}],
        "meters": [{
            "id": "m-1", "account": "f-1", "profile": "eastron-sdm630", "tariff": "strom",
            "modbus": {"host": "127.0.0.1", "port": port, "unit": 1}, "poll_s": 60,
            "disconnect": {"driver": "modbus-coil", "host": "127.0.0.1", "port": port,
                           "unit": RELAY_UNIT, "coil": 0},
        }],
    }


@pytest.fixture
async def flat(engine: AsyncEngine) -> AsyncIterator[Flat]:
    clock = LinkedClock()
    meter = EmulatedMeter("eastron-sdm630", 1, 3000, energy_wh=2_000_000, clock=clock.device,
                          load_from_supply=True)
    relay = EmulatedUnit(RELAY_UNIT, coils=[True, False])
    async with MeterLine(meter, relays=[relay]) as line:
        await link_supply(meter, line, unit=RELAY_UNIT, coil=0)
        await import_site(engine, site(line.port))
        flow = PaidUseFlow(session_factory(engine), clock=clock)
        pool = DriverPool(meter_of=meter_on_gateway, timeout_s=0.5)
        supply = SupplyBilling(flow, tariff_document)
        poller = MeterPoller(session_factory(engine), pool.gateways, clock=clock,
                             on_reading=supply.on_stored)
        control = SupplyControl(session_factory(engine), pool.relay, clock=clock,
                                options=SupplyOptions(warning_lead_s=1800))
        flat = Flat(engine, clock, meter, line, relay, poller, control)
        await flat.policy({"low_balance_thresholds": ["2.00", "1.00"]})
        await poller.poll_once()
        yield flat
        await pool.close()


async def test_credit_used_up_warns_then_cuts_and_a_top_up_restores(flat: Flat) -> None:
    # 3 kW at 0.40 net: 1.43 EUR an hour. 3.00 EUR last about two hours.
    for _ in range(8):
        await flat.step(15)
    assert await flat.coil() is True
    assert (await flat.alerts()).count("low_balance") == 2
    while await flat.available() > 0:
        await flat.step(15)
    # Used up: the household is warned first, the power stays on for the lead time.
    assert "supply_warning" in await flat.alerts()
    assert await flat.coil() is True and (await flat.state()).supply == "on"
    await flat.step(15)
    assert await flat.coil() is True
    await flat.step(20)
    assert await flat.coil() is False
    assert (await flat.state()).supply == "off"
    assert (await flat.alerts())[-1] == "supply_cut"
    assert await flat.switches() == [(False, "credit_exhausted", True)]
    # Cut: the meter stops counting, nothing more is debited.
    debt = await flat.available()
    register = flat.meter.energy_wh()
    await flat.step(60)
    assert flat.meter.energy_wh() == register and await flat.available() == debt

    async with session_factory(flat.engine)() as db:
        await top_up_cash(db, account_id="f-1", amount="20.00", receipt="R-1", staff="desk",
                          at=flat.clock())
        await db.commit()
    await flat.step(1)
    assert await flat.coil() is True
    assert (await flat.state()).supply == "on"
    assert (await flat.alerts())[-1] == "supply_restored"
    assert [s[:2] for s in await flat.switches()] == [(False, "credit_exhausted"), (True, "ok")]


async def test_never_cut_in_a_friendly_window_and_cut_when_it_closes(flat: Flat) -> None:
    # Friendly hours from 10:00 local for the whole test day's working hours.
    await flat.policy({"low_balance_thresholds": [],
                       "friendly": {"daily": {"from": "10:00", "to": "16:00"}}})
    for _ in range(23):  # until 15:45 local: far beyond the credit
        await flat.step(15)
    assert await flat.available() < 0
    assert await flat.coil() is True  # inside the window, whatever the balance
    assert "supply_warning" not in await flat.alerts()
    await flat.step(15)  # 16:00 local: the window closes; warned, then cut after the lead
    assert "supply_warning" in await flat.alerts()
    assert await flat.coil() is True
    await flat.step(35)
    assert await flat.coil() is False


async def test_operating_modes_free_never_cuts_blocked_always_does(flat: Flat) -> None:
    await flat.policy({"mode": "free"})
    for _ in range(16):
        await flat.step(15)
    assert await flat.coil() is True
    await flat.policy({"mode": "blocked"})
    await flat.step(1)
    assert await flat.coil() is False
    assert (await flat.switches())[-1][:2] == (False, "blocked")
    await flat.policy({"mode": "prepaid"})
    await flat.step(1)
    assert await flat.coil() is True


async def test_a_relay_that_does_not_switch_is_a_fault_and_an_alert(flat: Flat) -> None:
    await flat.policy({"mode": "blocked"})
    flat.relay.stuck[0] = True  # welded closed: the flat keeps its power
    await flat.step(1)
    assert (await flat.state()).supply == "fault"
    assert (await flat.switches())[-1] == (False, "blocked", False)
    async with session_factory(flat.engine)() as db:
        faults = (await db.exec(select(AlertOutbox).where(
            col(AlertOutbox.kind) == "device_fault"))).all()
    assert [(a.audience, a.payload["fault"]) for a in faults] == [
        ("staff", "supply_relay_failed")]
    flat.relay.stuck.pop(0)
    await flat.step(1)
    assert (await flat.state()).supply == "off" and await flat.coil() is False


async def test_the_household_sees_its_days_and_when_its_credit_runs_out(flat: Flat) -> None:
    from meters.consumption import meter_days, supply_forecast
    from meters.models import Meter

    async with session_factory(flat.engine)() as db:
        await top_up_cash(db, account_id="f-1", amount="200.00", receipt="R-2", staff="desk",
                          at=flat.clock())
        await db.commit()
    start_register = flat.meter.energy_wh()
    for _ in range(4 * 24 * 3):  # three days at 3 kW, read every 15 minutes
        flat.clock.advance(15 * 60)
        await flat.poller.poll_once()
    async with session_factory(flat.engine)() as db:
        meter = await db.get(Meter, "m-1")
        assert meter is not None
        days = await meter_days(db, meter, flat.clock(), days=4)
        forecast = await supply_forecast(db, meter, flat.clock(), days=2)
        view = await wallet_view(db, "f-1", flat.clock())
    # 10:00 local on day one to 10:00 on day four: 14 h, 24 h, 24 h, 10 h at 3 kW.
    assert [d.energy_wh for d in days] == [42_000, 72_000, 72_000, 30_000]
    assert sum(d.energy_wh for d in days) == int(flat.meter.energy_wh() - start_register)
    # A full day costs 72 kWh x 0.40 x 1.19; the days add up to what left the wallet.
    assert days[1].cost_gross == days[2].cost_gross == Decimal("34.27")
    assert sum(d.cost_gross for d in days) == Decimal("203.00") - view.balance
    assert forecast.cost_per_day == Decimal("34.27")
    assert forecast.available == view.available
    assert forecast.runs_out_at is not None and forecast.days_left is not None
    hours = (forecast.runs_out_at - flat.clock()).total_seconds() / 3600
    assert abs(hours - float(view.available / Decimal("34.27")) * 24) < 0.01
