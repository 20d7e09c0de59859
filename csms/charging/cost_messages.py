"""What the driver is shown: the tariff in words, the running and the final cost.

Every amount that goes on the OCPP wire passes `csms.ocpp.wire.money_to_wire` (quantised to the
currency's minor unit, then a JSON number), the one money encoder: the `ocpp` library would
write a Decimal with one digit. That holds inside the 1.6 DataTransfer `data` text as well.

- 2.0.1: `CostUpdated` while charging (on the wire ahead of the answer to the
  TransactionEvent that changed the cost), `totalCost` in the TransactionEventResponse on Ended
  (the spec allows it only there);
- 1.6 stations configured for it: the Open Charge Alliance California Pricing messages,
  DataTransfer with vendorId `org.openchargealliance.costmsg` and messageId `SetUserPrice`
  (after a badge was accepted), `RunningCost` (while charging) and `FinalCost` (at the end).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from csms.ocpp.wire import minor_units, money_to_wire, wire_timestamp

COSTMSG_VENDOR: Final = "org.openchargealliance.costmsg"
_SYMBOLS: Final = {"EUR": "€", "CHF": "CHF", "GBP": "£", "USD": "$"}


def wire_money(amount: Decimal, currency: str) -> float | int:
    """The one encoder, with the currency's minor unit."""
    return money_to_wire(amount, minor_units(currency))


def _data(values: Mapping[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


# 2.0.1


def cost_updated(station_tx_id: str, cost: Decimal, currency: str) -> dict[str, Any]:
    return {"totalCost": wire_money(cost, currency), "transactionId": station_tx_id}


# 1.6 California Pricing


def set_user_price(id_tag: str, price_text: str) -> dict[str, Any]:
    return {
        "vendorId": COSTMSG_VENDOR,
        "messageId": "SetUserPrice",
        "data": _data({"idToken": id_tag, "priceText": price_text}),
    }


def running_cost(
    transaction_id: int,
    *,
    at: datetime,
    meter_wh: int,
    cost: Decimal,
    currency: str,
    charging: bool,
) -> dict[str, Any]:
    return {
        "vendorId": COSTMSG_VENDOR,
        "messageId": "RunningCost",
        "data": _data(
            {
                "transactionId": transaction_id,
                "timestamp": wire_timestamp(at),
                "meterValue": meter_wh,
                "cost": wire_money(cost, currency),
                "state": "Charging" if charging else "Idle",
            }
        ),
    }


def final_cost(
    transaction_id: int, *, cost: Decimal, currency: str, price_text: str
) -> dict[str, Any]:
    return {
        "vendorId": COSTMSG_VENDOR,
        "messageId": "FinalCost",
        "data": _data(
            {
                "transactionId": transaction_id,
                "cost": wire_money(cost, currency),
                "priceText": price_text,
            }
        ),
    }


# the tariff in words

_WORDS: Final = {
    "de": {
        "from": "ab", "energy": "Energie", "time": "Zeit", "idle": "Standzeit",
        "flat": "pro Vorgang", "free": "frei", "vat": "zzgl. {vat} % MwSt.", "hour": "h",
        "intervals": "nach Intervalltabelle", "total": "Gesamt",
    },
    "en": {
        "from": "from", "energy": "energy", "time": "time", "idle": "idle",
        "flat": "per session", "free": "free", "vat": "plus {vat} % VAT", "hour": "h",
        "intervals": "by interval table", "total": "Total",
    },
}


def _amount(value: Any, language: str) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    places = max(2, -number.normalize().as_tuple().exponent)  # type: ignore[operator]
    text = f"{number:.{min(places, 4)}f}"
    return text.replace(".", ",") if language == "de" else text


def _quantity(value: int, unit: str, language: str) -> str:
    if unit == "Wh":
        return f"{_amount(Decimal(value) / 1000, language).rstrip('0').rstrip(',.')} kWh"
    minutes = value // 60
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def tariff_in_words(document: Mapping[str, Any], language: str) -> str:
    """One line a resident can read on a wallbox display, in `language` (de or en)."""
    lang = language if language in _WORDS else "de"
    words = _WORDS[lang]
    currency = str(document.get("currency", ""))
    symbol = _SYMBOLS.get(currency, currency)
    parts: list[str] = []
    for component in document.get("components", []):
        if not isinstance(component, Mapping):
            continue
        dimension = str(component.get("dimension"))
        if dimension == "flat":
            parts.append(f"{_amount(component.get('price'), lang)} {symbol} {words['flat']}")
            continue
        if "intervals" in component:
            parts.append(f"{words.get(dimension, dimension)} {words['intervals']}")
            continue
        unit = "Wh" if dimension == "energy" else "s"
        per = "kWh" if dimension == "energy" else words["hour"]
        tiers = []
        for index, tier in enumerate(component.get("tiers", [])):
            start = int(tier.get("from_wh", tier.get("from_s", 0)) or 0)
            price = f"{_amount(tier.get('price'), lang)} {symbol}/{per}"
            tiers.append(price if index == 0 and start == 0
                         else f"{words['from']} {_quantity(start, unit, lang)} {price}")
        free = component.get("free_wh") or component.get("free_s")
        text = f"{words.get(dimension, dimension)} " + ", ".join(tiers)
        if free:
            text += f" ({_quantity(int(free), unit, lang)} {words['free']})"
        parts.append(text)
    name = document.get("name") or document.get("id") or ""
    vat = document.get("vat_percent")
    tail = f" {words['vat'].format(vat=_amount(vat, lang).rstrip('0').rstrip(',.'))}" if vat else ""
    return f"{name}: {'; '.join(parts)}{tail}"[:500]


def final_text(cost: Decimal, currency: str, language: str) -> str:
    lang = language if language in _WORDS else "de"
    symbol = _SYMBOLS.get(currency, currency)
    digits = minor_units(currency)
    text = f"{cost:.{digits}f}"
    if lang == "de":
        text = text.replace(".", ",")
    return f"{_WORDS[lang]['total']}: {text} {symbol}"
