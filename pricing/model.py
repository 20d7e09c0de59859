"""The validated tariff, as immutable values. Build one with `load_tariff`, never by hand.

Quantities keep the units the document is written in (Wh, seconds, kW); the rating engine turns
them into its internal units once, when the tariff is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

# The parts live in pricing.parts (below pricing.plan, which compiles them); they stay
# importable from here.
from pricing.parts import (
    DAY_NAMES,
    METERED,
    Component,
    DayComponent,
    DebtRecovery,
    DemandComponent,
    Dimension,
    DimensionRules,
    FlatComponent,
    IntervalTable,
    Tier,
    TieredComponent,
    Window,
)
from pricing.plan import Plan

__all__ = [
    "DAY_NAMES",
    "METERED",
    "Component",
    "DayComponent",
    "DebtRecovery",
    "DemandComponent",
    "Dimension",
    "DimensionRules",
    "FlatComponent",
    "IntervalTable",
    "Tariff",
    "Tier",
    "TieredComponent",
    "Window",
]


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
