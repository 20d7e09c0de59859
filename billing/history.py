"""A household's paid uses over time: the list the resident's pages show, and the totals per
day and month their charts draw (pure, from the uses)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.models import PaidUse, UseStatus

KINDS = ("charging", "laundry", "supply")


async def account_uses(
    db: AsyncSession, account_id: str, *, limit: int = 200, since: datetime | None = None,
) -> Sequence[PaidUse]:
    """The account's uses, newest first (running ones included)."""
    query = select(PaidUse).where(col(PaidUse.account_id) == account_id)
    if since is not None:
        query = query.where(col(PaidUse.started_at) >= since)
    return (await db.exec(query.order_by(col(PaidUse.started_at).desc(), col(PaidUse.id).desc())
                          .limit(limit))).all()


async def running_uses(db: AsyncSession, account_id: str) -> Sequence[PaidUse]:
    query = select(PaidUse).where(col(PaidUse.account_id) == account_id,
                                  col(PaidUse.status) == UseStatus.ACTIVE)
    return (await db.exec(query.order_by(col(PaidUse.started_at)))).all()


def cost_of(use: PaidUse) -> Decimal:
    """What the use costs so far: the bill when settled, else the live cost."""
    if use.gross is not None:
        return use.gross
    if use.charged_gross is not None:
        return use.charged_gross
    return use.live_gross or Decimal(0)


@dataclass(frozen=True, slots=True)
class Totals:
    label: str
    energy_kwh: Decimal
    cost: Decimal


def totals_by_day(uses: Sequence[PaidUse], timezone: str, today: date, days: int = 30
                  ) -> list[Totals]:
    """Energy and cost per local day of the last `days` days (days without use are zero)."""
    zone = ZoneInfo(timezone)
    first = today - timedelta(days=days - 1)
    energy: dict[date, Decimal] = defaultdict(Decimal)
    cost: dict[date, Decimal] = defaultdict(Decimal)
    for use in uses:
        if use.started_at is None:
            continue
        day = use.started_at.astimezone(zone).date()
        if first <= day <= today:
            energy[day] += Decimal(use.energy_wh) / 1000
            cost[day] += cost_of(use)
    return [Totals((first + timedelta(days=n)).strftime("%d.%m."),
                   energy[first + timedelta(days=n)], cost[first + timedelta(days=n)])
            for n in range(days)]


def totals_by_month(uses: Sequence[PaidUse], timezone: str, today: date, months: int = 12
                    ) -> list[Totals]:
    zone = ZoneInfo(timezone)
    keys: list[tuple[int, int]] = []
    year, month = today.year, today.month
    for _ in range(months):
        keys.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    keys.reverse()
    energy: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for use in uses:
        if use.started_at is None:
            continue
        local = use.started_at.astimezone(zone)
        key = (local.year, local.month)
        energy[key] += Decimal(use.energy_wh) / 1000
        cost[key] += cost_of(use)
    return [Totals(f"{m:02d}/{y % 100:02d}", energy[(y, m)], cost[(y, m)]) for y, m in keys]


@dataclass(frozen=True, slots=True)
class Revenue:
    month: str  # YYYY-MM, site time
    kind: str
    uses: int
    net: Decimal
    gross: Decimal


async def site_revenue(db: AsyncSession, site_id: str, timezone: str, since: datetime
                       ) -> list[Revenue]:
    """Settled uses per month (of their end, site time) and service, oldest month first."""
    zone = ZoneInfo(timezone)
    rows = (await db.exec(select(PaidUse).where(
        col(PaidUse.site_id) == site_id, col(PaidUse.status) == UseStatus.COMPLETED,
        col(PaidUse.ended_at) >= since))).all()
    sums: dict[tuple[str, str], list[Decimal]] = {}
    for use in rows:
        if use.ended_at is None:
            continue
        key = (use.ended_at.astimezone(zone).strftime("%Y-%m"), use.kind)
        entry = sums.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
        entry[0] += 1
        entry[1] += use.net or Decimal(0)
        entry[2] += use.gross or Decimal(0)
    return [Revenue(month, kind, int(v[0]), v[1], v[2])
            for (month, kind), v in sorted(sums.items())]
