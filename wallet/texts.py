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
        "charging_stopped": (
            "Ladevorgang gestoppt",
            "Ihr Ladevorgang an {device_id} wurde gestoppt, weil das Guthaben nicht mehr "
            "reicht (Kosten bisher: {cost}). Nach einer Aufladung können Sie wieder laden.",
        ),
        "usage_held_for_review": (
            "Unplausibler Verbrauch an {device_id}",
            "An {device_id} wurden {implausible_wh} Wh mehr gemeldet, als das Gerät in der Zeit "
            "liefern kann (höchstens {max_power_w} W). Nur der plausible Teil wurde abgerechnet; "
            "der Vorgang wurde beendet und wartet auf Prüfung.",
        ),
        "badge_clone_suspected": (
            "Verdacht auf kopierten Ausweis {uid}",
            "Der Ausweis {uid} wurde an {first_point} und {second_point} innerhalb von "
            "{gap_s} s benutzt. Das kann eine Kopie sein: bitte prüfen und den Ausweis "
            "gegebenenfalls sperren.",
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
        "charging_stopped": (
            "Charging stopped",
            "Your charging session at {device_id} was stopped because your credit ran out "
            "(cost so far: {cost}). You can charge again after a top-up.",
        ),
        "usage_held_for_review": (
            "Implausible usage at {device_id}",
            "{device_id} reported {implausible_wh} Wh more than it can deliver in the time (at "
            "most {max_power_w} W). Only the plausible part was billed; the use was ended and "
            "waits for review.",
        ),
        "badge_clone_suspected": (
            "Badge {uid} may be cloned",
            "Badge {uid} was used at {first_point} and {second_point} within {gap_s} s. It may "
            "be a copy: please check and block the badge if need be.",
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


# Facts that are amounts of money, written in the currency the local way.
MONEY_FACTS = ("threshold", "balance", "available", "credit", "cost")


class _Facts(dict[str, str]):
    def __missing__(self, name: str) -> str:
        return "-"


def render(kind: str, language: str, facts: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of an alert; unknown languages fall back to German (the default).
    Money facts are formatted; other facts appear as they are; a missing fact reads "-"."""
    texts = TEXTS.get(language, TEXTS["de"])
    subject, body = texts[kind]
    currency = str(facts.get("currency", "EUR"))
    values = _Facts({name: str(value) for name, value in facts.items() if value is not None})
    for name in MONEY_FACTS:
        values[name] = (format_money(Decimal(str(facts[name])), currency, language)
                        if facts.get(name) is not None else "-")
    return subject.format_map(values), body.format_map(values)
