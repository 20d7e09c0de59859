"""What a reader shows after a tap, in German and English (devices.md: `message: {de, en}`)."""

from __future__ import annotations

from rfid.authorisation import Decision, personal_message

LANGUAGES = ("de", "en")

KIND_NAMES = {
    "de": {"washer": "Waschmaschine", "dryer": "Trockner", "other": "Gerät"},
    "en": {"washer": "Washer", "dryer": "Dryer", "other": "Machine"},
}

_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "accepted": "{machine} ist freigegeben. Bitte starten Sie das Programm innerhalb von "
        "{abandon_min} Minuten.",
        "already-open": "{machine} läuft bereits für Sie.",
        "in-use": "{machine} ist gerade von einem anderen Haushalt belegt.",
        "out-of-order": "{machine} ist außer Betrieb. Die Hausverwaltung ist informiert.",
        "relay-failed": "{machine} konnte nicht eingeschaltet werden und ist außer Betrieb. "
        "Es wurde nichts berechnet.",
    },
    "en": {
        "accepted": "{machine} is ready. Please start the programme within {abandon_min} "
        "minutes.",
        "already-open": "{machine} is already running for you.",
        "in-use": "{machine} is in use by another household.",
        "out-of-order": "{machine} is out of order. The property management has been told.",
        "relay-failed": "{machine} could not be switched on and is out of order. Nothing was "
        "charged.",
    },
}


def machine_name(kind: str, amenity_id: str, language: str) -> str:
    names = KIND_NAMES.get(language, KIND_NAMES["de"])
    return f"{names.get(kind, names['other'])} {amenity_id}"


def tap_message(reason: str, *, kind: str, amenity_id: str, abandon_s: int = 600
                ) -> dict[str, str]:
    """The reader's text for one of our reasons, in every language."""
    return {
        language: _TEXTS[language][reason].format(
            machine=machine_name(kind, amenity_id, language),
            abandon_min=max(1, abandon_s // 60),
        )
        for language in LANGUAGES
    }


def refusal_message(decision: Decision, tariff_name: str) -> dict[str, str]:
    """rfid's text for a refused badge, in every language."""
    return {
        language: personal_message(decision, language=language, tariff=tariff_name)
        for language in LANGUAGES
    }
