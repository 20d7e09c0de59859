"""A bill's lines as a person reads them: what was counted, at which price, in which tier or
time window, and why a line costs nothing (grace, free allowance, rounding to a step). Pure:
from the stored bill lines (pricing's JSON form) and the tariff the use started with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from csms.web.i18n import Translate, format_money, format_number

_UNITS = {"kWh": "kWh", "h": "h", "min": "min", "s": "s", "cycle": "×", "session": "×"}


@dataclass(frozen=True, slots=True)
class ExplainedLine:
    what: str  # "Energie, Stufe 2 (ab 40 kWh)"
    quantity: str  # "12,5 kWh"
    price: str  # "0,29 € / kWh"
    net: str
    note: str | None  # "in der Karenzzeit: kostenlos"


def _tier_from(tariff: Mapping[str, Any], component: int | None, tier: int | None) -> str | None:
    if component is None or tier is None:
        return None
    components = tariff.get("components") or []
    if component >= len(components):
        return None
    tiers = components[component].get("tiers") or []
    if tier >= len(tiers):
        return None
    start = tiers[tier]
    for key, unit, scale in (("from_wh", "kWh", 1000), ("from_s", "min", 60)):
        if key in start:
            return f"{Decimal(start[key]) / scale:g} {unit}"
    return None


def explain_lines(
    lines: Sequence[Mapping[str, Any]], tariff: Mapping[str, Any], currency: str, lang: str,
    t: Translate,
) -> list[ExplainedLine]:
    explained = []
    for line in lines:
        dimension = str(line.get("dimension", ""))
        what = t(f"bill.dimension.{dimension}") if dimension else "–"
        tier = line.get("tier")
        if tier is not None:
            start = _tier_from(tariff, line.get("component"), int(tier))
            what += ", " + (t("bill.tier_from", n=int(tier) + 1, start=start) if start
                            else t("bill.tier", n=int(tier) + 1))
        if line.get("window"):
            what += f" ({line['window']})"
        unit = str(line.get("unit", ""))
        quantity = f"{format_number(Decimal(str(line.get('quantity', 0))), lang, 3)} " \
                   f"{_UNITS.get(unit, unit)}"
        per = str(line.get("per", unit))
        price = f"{format_money(Decimal(str(line.get('unit_price', 0))), currency, lang)} / " \
                f"{_UNITS.get(per, per)}"
        note = line.get("note")
        explained.append(ExplainedLine(
            what=what, quantity=quantity.strip(), price=price,
            net=format_money(Decimal(str(line.get("net", 0))), currency, lang),
            note=t(f"bill.note.{note}") if note else None))
    return explained


def vat_percent(tariff: Mapping[str, Any]) -> str:
    return str(tariff.get("vat_percent", "0"))
