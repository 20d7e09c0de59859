"""A flat's electricity supply on the one paid-use flow: the continuous case (DESIGN.md).

Each meter's consumption in one local calendar month of its site is one paid use of kind
"supply" (`use_ref` "2026-03"), billed to the meter's account without a hold: every billable
reading is stored as a usage point and the flow debits what the month so far costs beyond what
was debited before (`PaidUseFlow.charge_so_far`, keyed by meter and reading). The month's debits
therefore add up to the price of the month's usage, whatever the tariff does with the whole
period (tiers, HT/NT windows split exactly by pricing, a base fee per day, a power price from
the month's peak 15-minute demand, debt recovery). A reading that spans the month's end is split
at local midnight (the register interpolated, whole Wh); the old month is settled then.

Readings that are not billable (a counter that runs backwards, NaN, an absurd jump: see
`meters.plausibility`) never reach here; re-reading or re-polling an instant stores nothing new
and debits nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import DeviceRef, NewPoint, PaidUse, PaidUseFlow, Unit, UseStatus
from meters.models import Meter
from meters.plausibility import max_power_w
from meters.readings import StoredReading
from rfid.authorisation import AuthStatus
from wallet.ledger import site_info

log = structlog.get_logger("meters.supply")

KIND = "supply"  # the ledger's service name
TariffOf = Callable[[AsyncSession, str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class SupplyReading:
    """A billable reading of a flat's meter, as the poller stored it."""

    meter_id: str
    site_id: str
    account_id: str
    tariff_id: str
    at: datetime
    energy_wh: int  # the register, after any meter exchange's offset
    # The last billable reading before it (None: the meter's first).
    previous: tuple[datetime, int] | None
    max_power_w: int | None = None


def month_of(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m")


def month_start(month: str, zone: ZoneInfo) -> datetime:
    """Local midnight of the month's first day, in UTC."""
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=zone).astimezone(UTC)


def next_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def register_at(at: datetime, left: tuple[datetime, int], right: tuple[datetime, int]) -> int:
    """The register at `at` between two readings, energy flowing evenly (whole Wh, floored)."""
    (t0, e0), (t1, e1) = left, right
    span = (t1 - t0).total_seconds()
    if span <= 0:
        return e1
    return e0 + int((e1 - e0) * (at - t0).total_seconds() // span)


class SupplyBilling:
    """One per node: turns billable meter readings into the month's debits."""

    def __init__(self, flow: PaidUseFlow, tariff_of: TariffOf) -> None:
        self.flow = flow
        self._tariff_of = tariff_of
        # Supply has no per-use device to stop: the supply relay follows the account's credit
        # (meters.supply_control), not a use.
        flow.register(KIND, None)

    async def _device(self, db: AsyncSession, reading: SupplyReading) -> tuple[DeviceRef, str]:
        site = await site_info(db, reading.site_id)
        device = DeviceRef(kind=KIND, device_id=reading.meter_id, site_id=reading.site_id,
                           tariff_id=reading.tariff_id, timezone=site.timezone,
                           location=reading.site_id, max_power_w=reading.max_power_w)
        return device, site.currency

    async def _month_use(
        self, unit: Unit, reading: SupplyReading, month: str, start: tuple[datetime, int]
    ) -> PaidUse:
        """The meter's use for `month`, opened once, starting at `start` (instant, register)."""
        device, currency = await self._device(unit.db, reading)
        tariff = await self._tariff_of(unit.db, reading.site_id, reading.tariff_id) or {}
        use = await self.flow.open(unit, device, month, tariff=tariff,
                                   currency=str(tariff.get("currency") or currency))
        if use.started_at is None:
            use.started_at = start[0]
            use.account_id = reading.account_id
            use.auth_status = AuthStatus.ACCEPTED.value
            await self.flow.add_points(unit, use, [NewPoint(
                f"{reading.meter_id}:{month}:start", 0, "start", start[0], None, unit.now,
                register_wh=start[1])])
        return use

    async def on_reading(self, db: AsyncSession, reading: SupplyReading) -> None:
        """Bill one billable reading, in the caller's transaction (stored together)."""
        unit = Unit(db, self.flow.clock())
        zone = ZoneInfo((await site_info(db, reading.site_id)).timezone)
        here = (reading.at, reading.energy_wh)
        previous = reading.previous or here
        month = month_of(previous[0], zone)
        start = previous
        # Months the span from the previous reading to this one closes, each settled at its
        # end with the register interpolated there.
        while month != month_of(reading.at, zone):
            boundary_at = month_start(next_month(month), zone)
            boundary = (boundary_at, register_at(boundary_at, previous, here))
            use = await self._month_use(unit, reading, month, start)
            if use.status != UseStatus.COMPLETED:
                await self.flow.add_points(unit, use, [NewPoint(
                    f"{reading.meter_id}:{month}:end", 0, "stop", boundary_at, None,
                    unit.now, register_wh=boundary[1])])
                use.ended_at = boundary_at
                use.stop_reason = "month_end"
                await self.flow.settle(unit, use)
                log.info("supply.month_settled", meter_id=reading.meter_id, month=month,
                         gross=str(use.gross), energy_wh=use.energy_wh)
            month, start = next_month(month), boundary
        use = await self._month_use(unit, reading, month, start)
        if use.status == UseStatus.COMPLETED:
            return
        added = await self.flow.add_points(unit, use, [NewPoint(
            f"{reading.meter_id}:reading", int(reading.at.timestamp()), "meter", reading.at,
            None, unit.now, register_wh=reading.energy_wh)])
        if added:
            await self.flow.charge_so_far(
                unit, use, cause=f"{reading.meter_id}:{reading.at.isoformat()}")

    async def on_stored(self, db: AsyncSession, stored: StoredReading) -> None:
        """The poller's hook: bill a stored reading if it is billable and not the first."""
        if not stored.billable or stored.energy_wh is None:
            return
        meter = await db.get(Meter, stored.meter_id)
        await self.on_reading(db, SupplyReading(
            stored.meter_id, stored.site_id, stored.account_id, stored.tariff_id, stored.at,
            stored.energy_wh, stored.previous_billable,
            max_power_w(meter.profile) if meter is not None else None,
        ))
