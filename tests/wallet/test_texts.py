"""Alert texts: every kind in German and English with the same placeholders, none of them left
without a documented fact, codes (a machine's kind, a device's fault) named in each language."""

from __future__ import annotations

from string import Formatter
from typing import Any

import pytest

from wallet.alerts import AlertKind, DeviceFault
from wallet.texts import FACTS, LANGUAGES, NAMED_FACTS, TEXTS, render

# A value for every documented fact. None contains "-": a "-" in a rendered text that is not in
# the template's own words ("top-up") can only be a placeholder left without its fact.
SAMPLE: dict[str, Any] = {
    "currency": "EUR", "balance": "4.5", "threshold": "5.00", "available": "0.00",
    "credit": "10", "cost": "1.85", "use_id": 17, "device_id": "washer1", "reason": "no_credit",
    "implausible_wh": 1200, "max_power_w": 11000, "uid": "04A2B3C4", "message": "two places",
    "first_point": "WB1", "second_point": "WB7", "gap_s": 40, "first_at": "20260325T120000Z",
    "second_at": "20260325T120100Z", "amenity": "washer1", "kind": "washer",
    "running_min": 62, "meter_id": "mA01", "fault": "relay_unreachable",
    "detail": "no answer from 10.0.4.21:80 for 30 s", "site_id": "lindenhof",
}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name}


def own_dashes(text: str) -> int:
    """The "-" in a template's words, outside its placeholders."""
    return sum(literal.count("-") for literal, _, _, _ in Formatter().parse(text))


def test_every_kind_is_documented_in_both_languages() -> None:
    assert set(LANGUAGES) == set(TEXTS)
    assert set(TEXTS["de"]) == set(TEXTS["en"]) == set(FACTS)
    assert {kind.value for kind in AlertKind} <= set(FACTS)
    assert {"laundry_done", "laundry_stopped", "device_fault", "device_fault_cleared",
            "supply_warning"} <= set(FACTS)


@pytest.mark.parametrize("kind", sorted(FACTS))
def test_a_kind_uses_its_documented_facts_only_and_the_same_in_both_languages(kind: str) -> None:
    named = {f"{fact}_name" for fact in FACTS[kind] if fact in NAMED_FACTS}
    used = {language: placeholders(subject) | placeholders(body)
            for language, (subject, body) in ((lang, TEXTS[lang][kind]) for lang in LANGUAGES)}
    assert used["de"] == used["en"]
    assert used["de"] <= set(FACTS[kind]) | named, used["de"] - set(FACTS[kind]) - named


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(FACTS))
def test_a_kind_renders_without_a_missing_fact(kind: str, language: str) -> None:
    facts = {fact: SAMPLE[fact] for fact in FACTS[kind]}
    template = "\n".join(TEXTS[language][kind])
    text = "\n".join(render(kind, language, facts))
    assert text.count("-") == own_dashes(template), text
    assert "{" not in text
    # Without its facts the same text shows the "-" this test looks for.
    if placeholders(template):
        assert "\n".join(render(kind, language, {})).count("-") > own_dashes(template)


def test_laundry_done_names_the_machine_in_each_language() -> None:
    facts = {"amenity": "washer-1", "kind": "washer", "cost": "1.85", "running_min": 62,
             "currency": "EUR"}
    subject, body = render("laundry_done", "de", facts)
    assert subject == "Wäsche fertig: Waschmaschine washer-1"
    assert body == ("Ihr Programm ist fertig: Waschmaschine washer-1, Laufzeit 62 min, "
                    "Kosten 1,85 €. Bitte holen Sie Ihre Wäsche ab.")
    subject, body = render("laundry_done", "en", facts)
    assert subject == "Laundry done: washer washer-1"
    assert "(running time 62 min, cost €1.85)" in body
    dryer = {**facts, "amenity": "dryer-2", "kind": "dryer"}
    assert render("laundry_done", "de", dryer)[0] == "Wäsche fertig: Trockner dryer-2"
    assert render("laundry_done", "en", dryer)[0] == "Laundry done: dryer dryer-2"
    other = {**facts, "amenity": "mangle-1", "kind": "other"}
    assert render("laundry_done", "de", other)[0] == "Wäsche fertig: Gerät mangle-1"
    assert render("laundry_done", "en", other)[0] == "Laundry done: machine mangle-1"


def test_laundry_stopped_renders_billings_payload() -> None:
    # billing raises f"{use.kind}_stopped" with exactly these keys when credit runs out.
    payload = {"use_id": 9, "device_id": "washer-1", "reason": "credit_exhausted",
               "cost": "2.4", "currency": "EUR"}
    subject, body = render("laundry_stopped", "de", payload)
    assert subject == "Programm gestoppt: washer-1"
    assert "an washer-1 wurde gestoppt" in body and "(Kosten bisher: 2,40 €)" in body
    subject, body = render("laundry_stopped", "en", payload)
    assert subject == "Cycle stopped: washer-1" and "(cost so far: €2.40)" in body


def test_every_device_fault_is_named_in_both_languages() -> None:
    for language in LANGUAGES:
        names = NAMED_FACTS["fault"][language]
        assert set(names) == set(DeviceFault)
        assert len(set(names.values())) == len(DeviceFault)
    facts = {"device_id": "washer-1", "fault": "relay_stuck_on", "detail": "output on",
             "site_id": "lindenhof"}
    assert render("device_fault", "de", facts)[0] == (
        "Störung an washer-1: Relais bleibt nach dem Ausschalten an")
    subject, body = render("device_fault", "en", facts)
    assert subject == "Fault at washer-1: relay stays on after switching off"
    assert "(site lindenhof)" in body and "Details: output on." in body
    assert "„Relais bleibt nach dem Ausschalten an“ ist behoben" in render(
        "device_fault_cleared", "de", facts)[1]
    # A fault this table does not know yet still reads as its code.
    assert render("device_fault", "en", {**facts, "fault": "relay_hot"})[0] == (
        "Fault at washer-1: relay_hot")


def test_supply_warning_formats_money_the_local_way() -> None:
    facts = {"balance": "3.2", "threshold": "5", "meter_id": "m-a-01", "currency": "EUR"}
    subject, body = render("supply_warning", "de", facts)
    assert subject == "Strom wird bald abgeschaltet"
    assert "beträgt 3,20 € und liegt unter 5,00 €" in body and "Zähler m-a-01" in body
    subject, body = render("supply_warning", "en", facts)
    assert "Your balance is €3.20, below €5.00" in body and "meter m-a-01" in body


def test_an_unknown_language_reads_german_throughout() -> None:
    facts = {"amenity": "washer-1", "kind": "washer", "cost": "1.85", "running_min": 62,
             "currency": "EUR"}
    assert render("laundry_done", "fr", facts) == render("laundry_done", "de", facts)
