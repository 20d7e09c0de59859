"""What residents and staff see of a site's machines (devices.md, the amenities list): state,
since when, and the open cycle's running time, energy and cost so far."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.models import OPEN_CYCLE_STATES, Amenity, AmenityCycle, AmenityStatus
from billing import PaidUse, shown_gross

FREE = "free"
OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True, slots=True)
class OpenCycle:
    cycle_id: int
    started_at: datetime | None
    running_s: int
    energy_wh: int
    cost_gross: Decimal | None
    currency: str | None
    account_id: str | None  # whose cycle it is (shown to that household and to staff only)


@dataclass(frozen=True, slots=True)
class MachineView:
    id: str
    kind: str
    building: str | None
    state: str  # free | authorised | running | ending | out_of_order
    since: datetime | None
    cycle: OpenCycle | None
    fault: str | None  # for staff


def _open_cycle(row: AmenityCycle, use: PaidUse | None, now: datetime) -> OpenCycle:
    assert row.id is not None
    running = 0
    if row.started_at is not None:
        running = max(0, int((now - row.started_at).total_seconds()))
    energy = 0
    if row.last_energy_wh is not None and row.tap_energy_wh is not None:
        energy = max(0, row.last_energy_wh - row.tap_energy_wh)
    cost = None
    if use is not None and use.live_gross is not None:
        cost = shown_gross(use, use.live_gross).quantize(Decimal("0.01"))
    return OpenCycle(row.id, row.started_at, running, energy, cost,
                     use.currency if use else None, use.account_id if use else None)


async def machine_views(db: AsyncSession, site_id: str, now: datetime) -> list[MachineView]:
    """Every machine of the site, in id order."""
    amenities = (
        await db.exec(select(Amenity).where(col(Amenity.site_id) == site_id)
                      .order_by(col(Amenity.id)))
    ).all()
    statuses = {
        s.amenity_id: s
        for s in (await db.exec(
            select(AmenityStatus).where(col(AmenityStatus.site_id) == site_id))).all()
    }
    open_rows = (
        await db.exec(
            select(AmenityCycle, PaidUse)
            .join(PaidUse, col(PaidUse.id) == AmenityCycle.use_id, isouter=True)
            .where(col(AmenityCycle.site_id) == site_id)
            .where(col(AmenityCycle.state).in_(OPEN_CYCLE_STATES))
        )
    ).all()
    cycles = {row.amenity_id: (row, use) for row, use in open_rows}
    views = []
    for amenity in amenities:
        status = statuses.get(amenity.id)
        fault = status.fault if status is not None else None
        found = cycles.get(amenity.id)
        if found is not None:
            row, use = found
            since = row.started_at if row.state != "authorised" and row.started_at else (
                row.below_since if row.state == "ending" and row.below_since else row.tapped_at)
            if row.state == "ending" and row.below_since is not None:
                since = row.below_since
            views.append(MachineView(amenity.id, amenity.kind, amenity.building_id, row.state,
                                     since, _open_cycle(row, use, now), fault))
            continue
        state = OUT_OF_ORDER if fault is not None else FREE
        views.append(MachineView(amenity.id, amenity.kind, amenity.building_id, state,
                                 status.since if status is not None else None, None, fault))
    return views
