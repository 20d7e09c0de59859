"""A tariff compiled for rating: integer money units, internal quantity units, window lookups.

Money inside the engine is an exact number of `1/scale` currency units, with `scale` chosen per
tariff so that every price per Wh and per microsecond is a whole number: rating a session of
whole Wh and whole microseconds is then integer arithmetic, and only a span split at a window
boundary brings in a `Fraction`. Energy is in Wh, time and idle in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from pricing.parts import (
    METERED,
    DayComponent,
    DebtRecovery,
    DemandComponent,
    Dimension,
    DimensionRules,
    FlatComponent,
    IntervalTable,
    TieredComponent,
    Window,
)
from pricing.timeofuse import US, HolidayCalendar, LocalCalendar, Switchboard

_US_PER_HOUR = 3600 * US
# Prices per kWh become per Wh (/1000) and prices per hour per microsecond (/3.6e9).
_UNIT_DIVISOR = {"energy": 1000, "time": _US_PER_HOUR, "idle": _US_PER_HOUR}
_UNIT = {"energy": 1, "time": US, "idle": US}  # internal units per document unit
_BASE_SCALE = _US_PER_HOUR  # a multiple of both divisors


def decimals_of(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class MeteredPlan:
    """One metered dimension (energy, time, idle) in internal units."""

    dimension: Dimension
    components: tuple[TieredComponent, ...]  # up to the first that always matches
    starts: tuple[tuple[int, ...], ...]  # tier starts per component
    unit_money: tuple[tuple[int, ...], ...]  # money per internal unit, per component and tier
    board: Switchboard | None  # None: the first component always applies
    step: int
    grace: int
    free: int
    table: IntervalTable | None
    table_interval: int  # internal units per interval
    table_money: tuple[int, ...]  # money per interval, per row
    per_unit: int  # internal units per document unit (1 for Wh, 10**6 for s)

    @property
    def has_grace(self) -> bool:
        return self.grace > 0


@dataclass(frozen=True, slots=True)
class Plan:
    scale: int
    order: tuple[str, ...]  # dimensions in the order they first appear, for bill lines
    metered: tuple[MeteredPlan, ...]
    flats: tuple[tuple[FlatComponent, int], ...]
    days: tuple[tuple[DayComponent, int], ...]
    demand: tuple[DemandComponent, int] | None
    recovery: tuple[DebtRecovery, int, int] | None  # money per Wh and per day
    calendar: LocalCalendar | None
    minimum: int | None
    maximum: int | None
    vat_factor: Decimal

    def money(self, price: Decimal) -> int:
        return int(price * self.scale)

    def matches(self, window: Window | None, instant: int) -> bool:
        if window is None:
            return True
        assert self.calendar is not None  # load_tariff requires a zone for any window
        return self.calendar.matches(window, instant)


def compile_plan(
    components: tuple[object, ...],
    rules: dict[Dimension, DimensionRules],
    tz: ZoneInfo | None,
    holidays: HolidayCalendar | None,
    vat_percent: Decimal,
    min_price: Decimal | None,
    max_price: Decimal | None,
    recovery: DebtRecovery | None,
) -> Plan:
    prices: list[Decimal] = [vat_percent]
    for component in components:
        if isinstance(component, TieredComponent):
            prices.extend(tier.price for tier in component.tiers)
        elif isinstance(component, IntervalTable):
            prices.extend(value for _, value in component.rows)
        elif isinstance(component, FlatComponent | DayComponent | DemandComponent):
            prices.append(component.price)
    prices.extend(price for price in (min_price, max_price) if price is not None)
    if recovery is not None:
        prices.extend((recovery.per_kwh, recovery.per_day))
    scale = _BASE_SCALE * 10 ** max(decimals_of(price) for price in prices)
    calendar = LocalCalendar(tz, holidays) if tz is not None else None

    def money(price: Decimal) -> int:
        return int(price * scale)

    order: list[str] = []
    for component in components:
        dimension = getattr(component, "dimension", "")
        if dimension not in order:
            order.append(dimension)

    metered: list[MeteredPlan] = []
    for dimension in METERED:
        own = [c for c in components if getattr(c, "dimension", None) == dimension]
        if not own:
            continue
        dimension_rules = rules.get(dimension, DimensionRules())
        per_unit = _UNIT[dimension]
        first = own[0]
        if isinstance(first, IntervalTable):
            per_interval = (
                first.interval * US
                if dimension != "energy"
                else first.interval
            )
            row_money = tuple(
                money(value) if dimension != "energy" else int(
                    Fraction(money(value) * first.interval, 1000)
                )
                for _, value in first.rows
            )
            metered.append(MeteredPlan(
                dimension, (), (), (), None, 1, 0, 0, first, per_interval, row_money, per_unit,
            ))
            continue
        tiered: list[TieredComponent] = []
        for component in own:
            assert isinstance(component, TieredComponent)
            tiered.append(component)
            if component.when is None:
                break  # later components of this dimension can never apply
        divisor = _UNIT_DIVISOR[dimension]
        board = None
        if tiered[0].when is not None:
            assert calendar is not None
            board = Switchboard(calendar, [c.when for c in tiered])
        metered.append(MeteredPlan(
            dimension=dimension,
            components=tuple(tiered),
            starts=tuple(tuple(t.start * per_unit for t in c.tiers) for c in tiered),
            unit_money=tuple(tuple(money(t.price) // divisor for t in c.tiers) for c in tiered),
            board=board,
            step=dimension_rules.step * per_unit,
            grace=dimension_rules.grace * per_unit,
            free=dimension_rules.free * per_unit,
            table=None,
            table_interval=0,
            table_money=(),
            per_unit=per_unit,
        ))

    flats = tuple((c, money(c.price)) for c in components if isinstance(c, FlatComponent))
    days = tuple((c, money(c.price)) for c in components if isinstance(c, DayComponent))
    demand = next(
        ((c, money(c.price)) for c in components if isinstance(c, DemandComponent)), None
    )
    return Plan(
        scale=scale,
        order=tuple(order),
        metered=tuple(metered),
        flats=flats,
        days=days,
        demand=demand,
        recovery=(
            (recovery, money(recovery.per_kwh) // 1000, money(recovery.per_day))
            if recovery is not None else None
        ),
        calendar=calendar,
        minimum=money(min_price) if min_price is not None else None,
        maximum=money(max_price) if max_price is not None else None,
        vat_factor=1 + vat_percent / 100,
    )
