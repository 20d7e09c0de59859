"""Alert texts in the reader's language (German, English), with money written the local way and
codes (a machine's kind, a device's fault) named in words.

`FACTS` documents, per alert kind, the facts its raiser puts in the payload and its texts use;
both languages use the same placeholders. A code fact listed in `NAMED_FACTS` is also available
as `{<fact>_name}`, its word in the text's language.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from wallet.alerts import DeviceFault

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
        "laundry_done": (
            "Wäsche fertig: {kind_name} {amenity}",
            "Ihr Programm ist fertig: {kind_name} {amenity}, Laufzeit {running_min} min, "
            "Kosten {cost}. Bitte holen Sie Ihre Wäsche ab.",
        ),
        "laundry_stopped": (
            "Programm gestoppt: {device_id}",
            "Ihr Programm an {device_id} wurde gestoppt, weil das Guthaben nicht mehr reicht "
            "(Kosten bisher: {cost}). Nach einer Aufladung können Sie die Maschine wieder "
            "nutzen.",
        ),
        "supply_warning": (
            "Strom wird bald abgeschaltet",
            "Ihr Guthaben beträgt {balance} und liegt unter {threshold}. Ist es aufgebraucht, "
            "wird die Stromversorgung an Zähler {meter_id} abgeschaltet. Bitte laden Sie "
            "rechtzeitig auf.",
        ),
        "device_fault": (
            "Störung an {device_id}: {fault_name}",
            "An {device_id} (Standort {site_id}) ist eine Störung aufgetreten: {fault_name}. "
            "Details: {detail}. Bitte prüfen Sie das Gerät vor Ort.",
        ),
        "device_fault_cleared": (
            "Störung behoben: {device_id}",
            "{device_id} (Standort {site_id}) funktioniert wieder; die Störung "
            "„{fault_name}“ ist behoben.",
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
        "laundry_done": (
            "Laundry done: {kind_name} {amenity}",
            "Your cycle on {kind_name} {amenity} has finished (running time {running_min} min, "
            "cost {cost}). Please collect your laundry.",
        ),
        "laundry_stopped": (
            "Cycle stopped: {device_id}",
            "Your cycle at {device_id} was stopped because your credit ran out (cost so far: "
            "{cost}). You can use the machine again after a top-up.",
        ),
        "supply_warning": (
            "Electricity will be cut soon",
            "Your balance is {balance}, below {threshold}. When it is used up, the electricity "
            "supply at meter {meter_id} will be cut. Please top up in time.",
        ),
        "device_fault": (
            "Fault at {device_id}: {fault_name}",
            "{device_id} (site {site_id}) has a fault: {fault_name}. Details: {detail}. Please "
            "check the device on site.",
        ),
        "device_fault_cleared": (
            "Fault cleared: {device_id}",
            "{device_id} (site {site_id}) works again; the fault \"{fault_name}\" has cleared.",
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

# Facts that are codes, shown as `{<fact>_name}` in words of the text's language; a code missing
# here is shown as it is (a new fault still reads as something).
NAMED_FACTS: dict[str, dict[str, dict[str, str]]] = {
    # A laundry machine's kind (devices.md: washer | dryer | other).
    "kind": {
        "de": {"washer": "Waschmaschine", "dryer": "Trockner", "other": "Gerät"},
        "en": {"washer": "washer", "dryer": "dryer", "other": "machine"},
    },
    "fault": {
        "de": {
            DeviceFault.RELAY_UNREACHABLE: "Relais nicht erreichbar",
            DeviceFault.RELAY_STUCK_ON: "Relais bleibt nach dem Ausschalten an",
            DeviceFault.RELAY_STUCK_OFF: "Relais lässt sich nicht einschalten",
            DeviceFault.READINGS_LOST: "Leistungsmesswerte fehlen",
            DeviceFault.SUPPLY_RELAY_FAILED: "Schalten der Stromversorgung fehlgeschlagen",
        },
        "en": {
            DeviceFault.RELAY_UNREACHABLE: "relay cannot be reached",
            DeviceFault.RELAY_STUCK_ON: "relay stays on after switching off",
            DeviceFault.RELAY_STUCK_OFF: "relay does not switch on",
            DeviceFault.READINGS_LOST: "power readings lost",
            DeviceFault.SUPPLY_RELAY_FAILED: "switching the supply failed",
        },
    },
}

# The facts each kind's raiser gives (money facts with their `currency`); the texts use no other.
FACTS: dict[str, tuple[str, ...]] = {
    "low_balance": ("currency", "balance", "threshold"),
    "credit_exhausted": ("currency", "available"),
    "emergency_credit_started": ("currency", "balance", "credit", "available"),
    "supply_cut": ("currency", "balance"),
    "supply_restored": ("currency", "balance"),
    # billing raises f"{use kind}_stopped" when credit runs out during a use.
    "charging_stopped": ("use_id", "device_id", "reason", "cost", "currency"),
    "laundry_stopped": ("use_id", "device_id", "reason", "cost", "currency"),
    "usage_held_for_review": ("use_id", "device_id", "implausible_wh", "max_power_w",
                              "currency"),
    "badge_clone_suspected": ("uid", "message", "first_point", "second_point", "gap_s",
                              "first_at", "second_at"),
    # A cycle ended: `amenity` the machine's id, `kind` washer | dryer | other.
    "laundry_done": ("amenity", "kind", "cost", "running_min", "currency"),
    # An apartment meter's supply is near its cut.
    "supply_warning": ("balance", "threshold", "meter_id", "currency"),
    # For staff: a machine or meter (`device_id`) of `site_id`; `fault` a `DeviceFault`.
    "device_fault": ("device_id", "fault", "detail", "site_id"),
    "device_fault_cleared": ("device_id", "fault", "site_id"),
}


class _Facts(dict[str, str]):
    def __missing__(self, name: str) -> str:
        return "-"


def render(kind: str, language: str, facts: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of an alert; unknown languages fall back to German (the default).
    Money facts are formatted, code facts named (`NAMED_FACTS`); other facts appear as they
    are; a missing fact reads "-"."""
    if language not in TEXTS:
        language = "de"
    subject, body = TEXTS[language][kind]
    currency = str(facts.get("currency", "EUR"))
    values = _Facts({name: str(value) for name, value in facts.items() if value is not None})
    for name in MONEY_FACTS:
        values[name] = (format_money(Decimal(str(facts[name])), currency, language)
                        if facts.get(name) is not None else "-")
    for name, words in NAMED_FACTS.items():
        if facts.get(name) is not None:
            code = str(facts[name])
            values[f"{name}_name"] = words[language].get(code, code)
    return subject.format_map(values), body.format_map(values)
