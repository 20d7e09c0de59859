"""Alert texts in the account's language (German, English), with money written the local way."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

LANGUAGES = ("de", "en")
_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$"}

TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "de": {
        "low_balance": (
            "Guthaben unter {threshold}",
            "Ihr Guthaben ist unter {threshold} gefallen und beträgt jetzt {balance}. "
            "Bitte laden Sie rechtzeitig auf, damit Laden, Waschen und Strom weiterlaufen.",
        ),
        "credit_exhausted": (
            "Guthaben aufgebraucht",
            "Ihr Guthaben ist aufgebraucht (verfügbar: {available}). Neue Ladevorgänge und "
            "Waschgänge starten erst nach einer Aufladung.",
        ),
        "emergency_credit_started": (
            "Notkredit aktiviert",
            "Ihr Notkredit über {credit} ist aktiv. Er wird mit der nächsten Aufladung zuerst "
            "verrechnet. Guthaben: {balance}.",
        ),
        "supply_cut": (
            "Stromversorgung abgeschaltet",
            "Ihre Stromversorgung wurde mangels Guthaben abgeschaltet (Guthaben: {balance}). "
            "Nach einer Aufladung wird sie wieder eingeschaltet.",
        ),
        "supply_restored": (
            "Stromversorgung wieder eingeschaltet",
            "Ihre Stromversorgung ist wieder eingeschaltet. Guthaben: {balance}.",
        ),
    },
    "en": {
        "low_balance": (
            "Balance below {threshold}",
            "Your balance has fallen below {threshold} and is now {balance}. Please top up in "
            "time so charging, laundry and electricity keep running.",
        ),
        "credit_exhausted": (
            "Credit used up",
            "Your credit is used up (available: {available}). New charging sessions and "
            "laundry cycles start again after a top-up.",
        ),
        "emergency_credit_started": (
            "Emergency credit activated",
            "Your emergency credit of {credit} is active. It is repaid first from your next "
            "top-up. Balance: {balance}.",
        ),
        "supply_cut": (
            "Electricity supply cut",
            "Your electricity supply was cut for lack of credit (balance: {balance}). It is "
            "switched back on after a top-up.",
        ),
        "supply_restored": (
            "Electricity supply restored",
            "Your electricity supply is back on. Balance: {balance}.",
        ),
    },
}


def format_money(amount: Decimal, currency: str, language: str) -> str:
    """12.5 EUR -> "12,50 €" (de) or "€12.50" (en)."""
    value = amount.quantize(Decimal("0.01"))
    symbol = _SYMBOLS.get(currency, currency)
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.2f}"
    if language == "de":
        digits = digits.replace(",", "\u202f").replace(".", ",")
        return f"{sign}{digits} {symbol}"
    return f"{sign}{symbol}{digits}" if len(symbol) == 1 else f"{sign}{digits} {symbol}"


def render(kind: str, language: str, facts: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of an alert; unknown languages fall back to German (the default)."""
    texts = TEXTS.get(language, TEXTS["de"])
    subject, body = texts[kind]
    currency = str(facts.get("currency", "EUR"))
    values = {
        name: format_money(Decimal(str(facts[name])), currency, language)
        if facts.get(name) is not None else "-"
        for name in ("threshold", "balance", "available", "credit")
    }
    return subject.format(**values), body.format(**values)
