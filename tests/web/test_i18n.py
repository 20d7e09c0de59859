"""Both languages carry the same texts; money, numbers and times as each language writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from csms.web.i18n import (
    accepted_language,
    catalog,
    format_money,
    format_time,
    page_language,
    translator,
)


def test_german_and_english_have_the_same_keys() -> None:
    assert set(catalog("de")) == set(catalog("en"))
    assert catalog("de")


def test_every_text_takes_the_same_placeholders_in_both_languages() -> None:
    import string

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    de, en = catalog("de"), catalog("en")
    assert [k for k in de if fields(de[k]) != fields(en[k])] == []


def test_a_missing_key_shows_itself() -> None:
    assert translator("de")("no.such.key") == "⟦no.such.key⟧"
    assert translator("en")("signin.throttled", seconds=30).endswith("30 seconds.")


@pytest.mark.parametrize(("header", "lang"), [
    ("en-GB,en;q=0.9,de;q=0.8", "en"), ("fr-CH, de-CH;q=0.8, en;q=0.5", "de"),
    ("de;q=0.3, en;q=0.7", "en"), ("fr", None), (None, None), ("en;q=bad, de", "de"),
])
def test_accept_language(header: str | None, lang: str | None) -> None:
    assert accepted_language(header) == lang


def test_the_switch_beats_the_account_which_beats_the_browser() -> None:
    assert page_language("en", "de", "de", "de") == "en"
    assert page_language(None, None, "en", "de") == "en"
    assert page_language(None, None, None, "en-US") == "en"
    assert page_language("xx", None, None, None) == "de"


def test_money() -> None:
    assert format_money(Decimal("1234.5"), "EUR", "de") == "1\u202f234,50\u00a0€"
    assert format_money(Decimal("1234.5"), "EUR", "en") == "€1,234.50"
    assert format_money(Decimal("-0.125"), "EUR", "en") == "−€0.13"
    assert format_money(Decimal("12"), "CHF", "de") == "CHF 12.00"


def test_times_are_shown_in_the_site_zone() -> None:
    moment = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
    assert format_time(moment, "Europe/Berlin", "de") == "02.07.2026 00:30"
    assert format_time(moment, "Europe/Zurich", "en") == "2026-07-02 00:30"
