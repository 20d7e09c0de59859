"""A use's usage and bill: `pricing.rate` over the points stored for it (and what its device
reports elsewhere), the one rating behind the live cost, the final bill and the debit.

A running use is rated incrementally (`LiveUsage`): this node keeps its rating between messages
and grows it by the points the current message stored, when it has seen every earlier point
(the use's point count says so) and the new ones only append; otherwise, and for an ended use,
the usage is rebuilt from all stored points. Both give the same bill (a property test holds
them equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.device import ExtraPoints, UseRef
from billing.live_usage import LiveUsage, NotAppendable, UsageFigures
from billing.models import PaidUse, UsagePoint
from billing.usage import BuiltUsage, Point, build_usage
from pricing import Bill, Tariff, load_tariff, rate
from wallet.ledger import site_info

# Per node: enough for every use running at once on a large fleet; beyond, rebuilds.
MAX_RUNNING = 10_000
MAX_TARIFFS = 4096


def use_ref_of(use: PaidUse) -> UseRef:
    assert use.id is not None
    return UseRef(use.id, use.kind, use.device_id, use.use_ref, use.account_id, use.currency)


async def stored_points(db: AsyncSession, use: PaidUse) -> list[Point]:
    rows = (
        await db.exec(
            select(UsagePoint.at, UsagePoint.register_wh, UsagePoint.state)
            .where(col(UsagePoint.use_id) == use.id)
        )
    ).all()
    return [Point(at, register_wh, state) for at, register_wh, state in rows]


async def usage_of(
    db: AsyncSession, use: PaidUse, extra: ExtraPoints | None = None
) -> BuiltUsage | None:
    """The use's usage from its stored points (and what its device reports elsewhere),
    bounded by its start and end."""
    points = await stored_points(db, use)
    if extra is not None:
        points.extend(await extra(db, use_ref_of(use), use.started_at))
    return build_usage(points, start=use.started_at, end=use.ended_at)


@dataclass(slots=True)
class _Running:
    """A node's running rating of a use, and what it has seen: (points, start, extra points)."""

    usage: LiveUsage
    key: tuple[int, datetime | None, tuple[Point, ...]]


class UseRatings:
    """The ratings of one node: tariffs loaded once per use, running uses kept between
    messages."""

    def __init__(self) -> None:
        self.extra_points: dict[str, ExtraPoints] = {}
        self._tariffs: dict[int, Tariff] = {}
        self._running: dict[int, _Running] = {}

    def forget(self, use_id: int) -> None:
        self._tariffs.pop(use_id, None)
        self._running.pop(use_id, None)

    async def usage(self, db: AsyncSession, use: PaidUse) -> BuiltUsage | None:
        return await usage_of(db, use, self.extra_points.get(use.kind))

    async def _tariff(self, db: AsyncSession, use: PaidUse) -> Tariff:
        assert use.id is not None
        tariff = self._tariffs.get(use.id)
        if tariff is None:
            site = await site_info(db, use.site_id)
            tariff = load_tariff(
                use.tariff, site_timezone=site.timezone, site_country=site.country,
                site_region=site.region,
            )
            if len(self._tariffs) > MAX_TARIFFS:
                self._tariffs.clear()
            self._tariffs[use.id] = tariff
        return tariff

    async def rate(
        self, db: AsyncSession, use: PaidUse, new: Sequence[Point]
    ) -> tuple[UsageFigures, Bill] | None:
        """The figures and bill of the usage so far; `new` are the points the current
        message stored (already counted in `use.point_count`)."""
        assert use.id is not None
        tariff = await self._tariff(db, use)
        source = self.extra_points.get(use.kind)
        extra = tuple(await source(db, use_ref_of(use), use.started_at)) if source else ()
        if use.ended_at is not None:
            self._running.pop(use.id, None)
            built = build_usage([*await stored_points(db, use), *extra],
                                start=use.started_at, end=use.ended_at,
                                max_power_w=use.max_power_w)
            if built is None:
                return None
            figures = UsageFigures(built.energy_wh, built.duration_s, built.idle_s,
                                   built.last_register_wh, built.register_reset,
                                   built.usage.samples[-1], built.implausible_wh)
            return figures, rate(tariff, built.usage)
        running = self._running.pop(use.id, None)
        if running is not None and running.key == (
            use.point_count - len(new), use.started_at, extra
        ):
            try:
                running.usage.grow(new)
            except NotAppendable:
                running = None
        else:
            running = None
        if running is None:
            usage = LiveUsage.of([*await stored_points(db, use), *extra],
                                 start=use.started_at, tariff=tariff,
                                 max_power_w=use.max_power_w)
            if usage is None:
                return None
            running = _Running(usage, (0, None, ()))
        running.key = (use.point_count, use.started_at, extra)
        if len(self._running) >= MAX_RUNNING:
            self._running.clear()
        self._running[use.id] = running
        bill = running.usage.bill
        assert bill is not None
        return running.usage.figures(), bill
