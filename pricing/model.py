"""The validated tariff, as immutable values. Build one with `load_tariff`, never by hand.

Quantities keep the units the document is written in (Wh, seconds, kW); the rating engine turns
them into its internal units once, when the tariff is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pricing.plan import Plan

Dimension = Literal["energy", "time", "idle", "flat", "day", "demand"]
METERED: tuple[Dimension, ...] = ("energy", "time", "idle")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """A time-of-use window, local time in the tariff's zone.

    A window opens on each matching day at `opens` (minutes after local midnight) and closes at
    `closes` the same day, or the next day when `closes <= opens` (it wraps past midnight and
    still belongs to the day it opened on). `closes == 1440` is the end of the day.
    """

    weekdays: frozenset[int]  # 0 = Monday
    holiday: bool
    opens: int
    closes: int
    text: str

    @property
    def wraps(self) -> bool:
        return self.closes <= self.opens

    def day_matches(self, weekday: int, is_holiday: bool) -> bool:
        return weekday in self.weekdays or (self.holiday and is_holiday)


@dataclass(frozen=True, slots=True)
class Tier:
    start: int  # from_wh or from_s
    price: Decimal  # per kWh or per hour, net


@dataclass(frozen=True, slots=True)
class TieredComponent:
    index: int  # position in the document's `components`
    dimension: Dimension  # energy | time | idle
    tiers: tuple[Tier, ...]
    when: Window | None
    name: str | None


@dataclass(frozen=True, slots=True)
class IntervalTable:
    """The interval-table form (seed 003): row `(n, v)` prices interval n onwards."""

    index: int
    dimension: Dimension  # energy | time
    interval: int  # interval_wh or interval_s
    rows: tuple[tuple[int, Decimal], ...]
    name: str | None


@dataclass(frozen=True, slots=True)
class FlatComponent:
    index: int
    price: Decimal
    when: Window | None
    name: str | None
    dimension: Dimension = "flat"


@dataclass(frozen=True, slots=True)
class DayComponent:
    """A fee per started local day (base fee), the first whose `when.days` matches the day."""

    index: int
    price: Decimal
    when: Window | None
    name: str | None
    dimension: Dimension = "day"


@dataclass(frozen=True, slots=True)
class DemandComponent:
    """A power price per kW of the highest average demand over clock-aligned intervals."""

    index: int
    price: Decimal
    interval_s: int
    name: str | None
    dimension: Dimension = "demand"


Component = TieredComponent | IntervalTable | FlatComponent | DayComponent | DemandComponent


@dataclass(frozen=True, slots=True)
class DimensionRules:
    """`step_*`, `grace_*` and `free_*` of one metered dimension, in its document unit."""

    step: int = 1
    grace: int = 0
    free: int = 0


@dataclass(frozen=True, slots=True)
class DebtRecovery:
    """Repayment of an old debt alongside consumption: VAT-free, outside min/max price."""

    per_kwh: Decimal
    per_day: Decimal


@dataclass(frozen=True, slots=True)
class Tariff:
    id: str
    name: str | None
    currency: str
    vat_percent: Decimal
    timezone: str | None
    country: str | None
    region: str | None
    min_price: Decimal | None
    max_price: Decimal | None
    components: tuple[Component, ...]
    rules: tuple[tuple[Dimension, DimensionRules], ...]
    debt_recovery: DebtRecovery | None
    # Compiled form (internal units, window caches); equal tariffs compare equal without it.
    plan: Plan = field(repr=False, compare=False, hash=False)

    def rules_for(self, dimension: Dimension) -> DimensionRules:
        for name, rules in self.rules:
            if name == dimension:
                return rules
        return DimensionRules()
