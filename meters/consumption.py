"""What a household sees of its flat's electricity: consumption and cost per local day, and when
the balance runs out at the current rate."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from meters.models import Meter, MeterReading
from wallet.ledger import site_info
from wallet.models import JournalEntry, Posting
from wallet.service import wallet_view

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class DayUse:
    day: date
    energy_wh: int
    cost_gross: Decimal  # what left the wallet for this meter that day


@dataclass(frozen=True, slots=True)
class Forecast:
    available: Decimal
    cost_per_day: Decimal  # the average of the last `days` full days
    runs_out_at: datetime | None  # None: nothing is being spent
    days_left: Decimal | None


def daily_energy(readings: Sequence[tuple[datetime, int]], zone: ZoneInfo) -> dict[date, int]:
    """Energy per local day from register readings (ordered by time), the register interpolated
    at each midnight between two readings (whole Wh)."""
    days: dict[date, int] = {}
    for (t0, e0), (t1, e1) in itertools.pairwise(readings):
        if t1 <= t0 or e1 < e0:
            continue
        cursor, register = t0, e0
        while True:
            local_day = cursor.astimezone(zone).date()
            midnight = datetime.combine(local_day + timedelta(days=1), time(0), zone)
            end = min(t1, midnight.astimezone(UTC))
            span = (t1 - t0).total_seconds()
            at_end = e0 + int((e1 - e0) * (end - t0).total_seconds() // span)
            days[local_day] = days.get(local_day, 0) + at_end - register
            if end >= t1:
                break
            cursor, register = end, at_end
    return days


def runs_out(available: Decimal, cost_per_day: Decimal, now: datetime
             ) -> tuple[datetime | None, Decimal | None]:
    """When `available` is spent at `cost_per_day`: the instant and the days left."""
    if cost_per_day <= 0:
        return None, None
    if available <= 0:
        return now, Decimal("0.0")
    days = (available / cost_per_day).quantize(Decimal("0.1"))
    return now + timedelta(days=float(available / cost_per_day)), days


async def _costs_by_day(db: AsyncSession, meter: Meter, zone: ZoneInfo, since: datetime
                        ) -> dict[date, Decimal]:
    rows = (
        await db.exec(
            select(JournalEntry.created_at, func.sum(Posting.amount))
            .join(Posting, col(Posting.entry_id) == JournalEntry.id)
            .where(col(JournalEntry.account_id) == meter.account_id)
            .where(col(JournalEntry.key).like(f"supply:{meter.id}:%"))
            .where(col(Posting.ledger_account_id) == f"wallet:{meter.account_id}")
            .where(col(JournalEntry.created_at) >= since)
            .group_by(col(JournalEntry.id), col(JournalEntry.created_at))
        )
    ).all()
    costs: dict[date, Decimal] = {}
    for created_at, amount in rows:
        day = created_at.astimezone(zone).date()
        costs[day] = costs.get(day, ZERO) - Decimal(amount or 0)
    return costs


async def meter_days(db: AsyncSession, meter: Meter, now: datetime, days: int = 30
                     ) -> list[DayUse]:
    """The last `days` local days (today included), oldest first."""
    zone = ZoneInfo((await site_info(db, meter.site_id)).timezone)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(0), zone).astimezone(UTC)
    rows = (
        await db.exec(
            select(MeterReading.at, MeterReading.energy_import_wh, MeterReading.offset_wh)
            .where(col(MeterReading.meter_id) == meter.id)
            .where(col(MeterReading.billable).is_(True))
            .where(col(MeterReading.at) >= since - timedelta(days=1))
            .order_by(col(MeterReading.at))
        )
    ).all()
    readings = [(at, wh + offset) for at, wh, offset in rows if wh is not None]
    energy = daily_energy(readings, zone)
    costs = await _costs_by_day(db, meter, zone, since)
    return [
        DayUse(day, energy.get(day, 0), costs.get(day, ZERO).quantize(Decimal("0.01")))
        for day in (first + timedelta(days=n) for n in range(days))
    ]


async def supply_forecast(db: AsyncSession, meter: Meter, now: datetime, days: int = 7
                          ) -> Forecast:
    """When the account's available credit runs out at this meter's recent daily cost."""
    recent = await meter_days(db, meter, now, days + 1)
    full_days = recent[:-1]  # today is not over
    spent = sum((d.cost_gross for d in full_days), ZERO)
    per_day = (spent / len(full_days)).quantize(Decimal("0.01")) if full_days else ZERO
    available = (await wallet_view(db, meter.account_id, now)).available.quantize(Decimal("0.01"))
    at, left = runs_out(available, per_day, now)
    return Forecast(available, per_day, at, left)
