"""The parts a tariff is made of, as immutable values: windows, components, rules.

They sit below both the tariff (`pricing.model.Tariff`) and its compiled form (`pricing.plan`),
which hold them; `pricing.model` re-exports them, so `from pricing.model import Window` works.
Quantities keep the units the document is written in (Wh, seconds, kW).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

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
