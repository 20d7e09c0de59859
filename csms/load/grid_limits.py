"""The grid operator's temporary limits (§14a EnWG: a controllable device may be dimmed, e.g.
to 4.2 kW, for a while): set for the site's connection or one station, active until their end
or until lifted; load management applies them at its next computation (within a reading period).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Station
from csms.load.models import GridLimit, SiteLoad

VOLTS = Decimal(230)


class GridLimitProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def amperes_of(watts: int, phases: int) -> Decimal:
    """Per phase, at 230 V: 4,200 W on three phases is 6.0 A."""
    return (Decimal(watts) / (VOLTS * phases)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


@dataclass(frozen=True, slots=True)
class LimitRequest:
    site_id: str
    ends_at: datetime
    station_id: str | None = None
    limit_a: Decimal | None = None
    limit_w: int | None = None
    reason: str | None = None


async def set_grid_limit(
    db: AsyncSession, request: LimitRequest, *, now: datetime, actor: str
) -> GridLimit:
    """Validate and store; flushes, the caller commits. Bad input changes nothing."""
    if (request.limit_a is None) == (request.limit_w is None):
        raise GridLimitProblem("limit", "give the limit in kW or in A, one of them")
    if request.ends_at <= now:
        raise GridLimitProblem("until", "the end must be in the future")
    section = await db.get(SiteLoad, request.site_id)
    phases = int(section.section.get("phases", 3)) if section is not None else 3
    if request.station_id is not None:
        station = await db.get(Station, request.station_id)
        if station is None or station.site_id != request.site_id:
            raise GridLimitProblem("station", f"no station {request.station_id!r} on site "
                                   f"{request.site_id!r}")
    elif section is None:
        raise GridLimitProblem("site", f"site {request.site_id!r} has no load management "
                               "(load: in its site file): limit a station instead")
    if request.limit_w is not None:
        if not 0 <= request.limit_w <= 1_000_000:
            raise GridLimitProblem("kw", "from 0 to 1000 kW")
        limit_a = amperes_of(request.limit_w, phases)
    else:
        assert request.limit_a is not None
        if not (Decimal(0) <= request.limit_a <= Decimal(4000)) or not request.limit_a.is_finite():
            raise GridLimitProblem("amps", "from 0 to 4000 A")
        limit_a = request.limit_a.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
    row = GridLimit(site_id=request.site_id, station_id=request.station_id, limit_a=limit_a,
                    limit_w=request.limit_w, starts_at=now, ends_at=request.ends_at,
                    reason=request.reason, created_by=actor[:80])
    db.add(row)
    await db.flush()
    return row


async def lift_grid_limit(db: AsyncSession, limit_id: int, site_id: str | None,
                          now: datetime) -> GridLimit:
    row = await db.get(GridLimit, limit_id)
    if row is None or (site_id is not None and row.site_id != site_id):
        raise GridLimitProblem("id", f"no grid limit {limit_id}")
    if row.lifted_at is None and row.ends_at > now:
        row.lifted_at = now
        db.add(row)
        await db.flush()
    return row


async def active_limits(db: AsyncSession, site_id: str, now: datetime) -> list[GridLimit]:
    query = select(GridLimit).where(
        col(GridLimit.site_id) == site_id, col(GridLimit.starts_at) <= now,
        col(GridLimit.ends_at) > now, col(GridLimit.lifted_at).is_(None),
    ).order_by(col(GridLimit.id))
    return list((await db.exec(query)).all())


async def site_limits(db: AsyncSession, site_id: str) -> list[GridLimit]:
    query = select(GridLimit).where(col(GridLimit.site_id) == site_id).order_by(
        col(GridLimit.id).desc()).limit(200)
    return list((await db.exec(query)).all())


def effective(limits: list[GridLimit]) -> tuple[Decimal | None, dict[str, Decimal]]:
    """The lowest site limit (None without one) and the lowest limit per station."""
    site = [g.limit_a for g in limits if g.station_id is None]
    stations: dict[str, Decimal] = {}
    for g in limits:
        if g.station_id is not None:
            stations[g.station_id] = min(g.limit_a, stations.get(g.station_id, g.limit_a))
    return (min(site) if site else None), stations
