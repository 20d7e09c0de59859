"""The bill: totals and self-explaining lines, and its JSON form (amounts as strings)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

Number = int | Fraction
_ZEROS = {places: Decimal(0).scaleb(-places) for places in range(8)}


@dataclass(frozen=True, slots=True)
class Line:
    """One priced piece of a session: `quantity` (in `unit`) at `unit_price` per `per` is `net`.

    `component` is the position in the tariff's `components` (None for quantity no component
    prices); `tier` the tier or interval-table row. `note` says why a line costs nothing or
    where it comes from: "free" (free allowance), "grace" (stayed inside the grace),
    "step" (rounded up to a whole step), "unpriced" (no window matched), "void" (void session).
    """

    dimension: str
    component: int | None
    name: str | None
    tier: int | None
    window: str | None
    quantity: Decimal
    unit: str
    unit_price: Decimal
    per: str
    net: Decimal
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Bill:
    """A rated session. The wallet debits `gross` (plus `recovery` for a debt-recovery tariff,
    which it books to the debt instead of revenue; `total` is the sum of both)."""

    currency: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    lines: tuple[Line, ...]
    subtotal: Decimal  # the exact sum of the lines before min/max price, quantised
    adjustment: str | None  # "min_price" or "max_price" when one of them set `net`
    void: bool  # stayed inside every grace: costs nothing, flat fee included
    recovery: Decimal  # 0.00 unless the tariff has debt_recovery
    total: Decimal  # gross + recovery: what leaves the wallet
    has_recovery: bool


def quantize(value: Number, scale: int, places: int) -> Decimal:
    """`value / scale` rounded half-up to `places` decimals (values are never negative)."""
    if type(value) is int:
        if value == 0:
            return _ZEROS[places]
        numerator, denominator = value, scale
    else:
        numerator, denominator = value.numerator, value.denominator * scale
    shifted = (2 * numerator * 10**places + denominator) // (2 * denominator)
    return Decimal(shifted).scaleb(-places)


def plain_quantity(value: Number, per_unit: int) -> Decimal:
    """A quantity in its document unit: exact, or to 6 decimals where it does not terminate."""
    if type(value) is int:
        if value % per_unit == 0:
            return Decimal(value // per_unit)
        # per_unit is a power of ten: the quotient terminates
        return Decimal(value).scaleb(-len(str(per_unit)) + 1).normalize()
    exact = Fraction(value, per_unit)
    if exact.denominator == 1:
        return Decimal(exact.numerator)
    shifted = (2 * exact.numerator * 10**6 + exact.denominator) // (2 * exact.denominator)
    rounded = Decimal(shifted).scaleb(-6)
    if rounded == rounded.to_integral_value():
        return rounded.quantize(Decimal(1))
    return rounded.normalize()


def _quantity_json(quantity: Decimal) -> int | str:
    if quantity == quantity.to_integral_value():
        return int(quantity)
    return str(quantity)


def line_to_json(line: Line) -> dict[str, Any]:
    return {
        "dimension": line.dimension,
        "component": line.component,
        "name": line.name,
        "tier": line.tier,
        "window": line.window,
        "quantity": _quantity_json(line.quantity),
        "unit": line.unit,
        "unit_price": str(line.unit_price),
        "per": line.per,
        "net": str(line.net),
        "note": line.note,
    }


def bill_to_json(bill: Bill) -> dict[str, Any]:
    """The contract's bill object. Quantities are numbers when whole, else decimal strings.

    `adjustment` appears only when min/max price set the net; `recovery` and `total` only for a
    tariff with `debt_recovery`.
    """
    doc: dict[str, Any] = {
        "currency": bill.currency,
        "net": str(bill.net),
        "vat": str(bill.vat),
        "gross": str(bill.gross),
        "lines": [line_to_json(line) for line in bill.lines],
    }
    if bill.adjustment is not None:
        doc["adjustment"] = {"rule": bill.adjustment, "subtotal": str(bill.subtotal)}
    if bill.has_recovery:
        doc["recovery"] = str(bill.recovery)
        doc["total"] = str(bill.total)
    return doc
