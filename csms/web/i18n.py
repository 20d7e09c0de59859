"""German and English for the pages: catalogs, the page's language, money and times as each
language writes them.

Catalogs are the JSON files `locales/<lang>/*.json` (flat keys, `"resident.balance": "Guthaben"`),
one file per area so that areas do not edit one file. A key missing in a language renders as
`⟦key⟧`: visible on the page and found by the tests, never a silent fallback to another language.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LOCALES = Path(__file__).with_name("locales")
MISSING = "⟦{}⟧"

Translate = Callable[..., str]


@cache
def catalog(lang: str) -> Mapping[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((LOCALES / lang).glob("*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))
        clash = set(merged) & set(entries)
        if clash:
            raise ValueError(f"{path}: keys defined twice: {', '.join(sorted(clash))}")
        merged.update(entries)
    return merged


def translator(lang: str) -> Translate:
    entries = catalog(lang)

    def t(key: str, **values: object) -> str:
        text = entries.get(key)
        if text is None:
            return MISSING.format(key)
        return text.format(**values) if values else text

    return t


def accepted_language(header: str | None) -> str | None:
    """The first of de/en the browser's Accept-Language asks for, by its q weights."""
    if not header:
        return None
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weighted.append((-q, position, tag.strip().lower()[:2]))
    for _, _, lang in sorted(weighted):
        if lang in LANGUAGES:
            return lang
    return None


def page_language(
    asked: str | None, cookie: str | None, user_language: str | None, header: str | None
) -> str:
    """?lang= first, then the switch's cookie, the user's setting, the browser, German."""
    for choice in (asked, cookie, user_language):
        if choice in LANGUAGES:
            return choice
    return accepted_language(header) or DEFAULT_LANGUAGE


_CENT = Decimal("0.01")


def format_money(amount: Decimal | None, currency: str, lang: str) -> str:
    """`12,34 €` in German, `€12.34` in English; CHF as `CHF 12.34` in both (Swiss usage)."""
    if amount is None:
        return "–"
    value = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    sign = "−" if value < 0 else ""
    digits = f"{abs(value):,.2f}"
    if currency == "CHF":
        return f"{sign}CHF {digits.replace(',', '’')}"
    symbol = {"EUR": "€"}.get(currency, currency)
    if lang == "de":
        digits = digits.replace(",", "\u202f").replace(".", ",")
        return f"{sign}{digits}\u00a0{symbol}"
    return f"{sign}{symbol}{digits}"


def format_number(value: Decimal | int | float, lang: str, places: int = 2) -> str:
    text = f"{Decimal(str(value)):,.{places}f}"
    return text.replace(",", "\u202f").replace(".", ",") if lang == "de" else text


def format_time(
    moment: datetime | None, timezone: str, lang: str, *, date_only: bool = False
) -> str:
    """A UTC instant as the site's local time, in each language's usual order."""
    if moment is None:
        return "–"
    local = moment.astimezone(ZoneInfo(timezone))
    if lang == "de":
        return local.strftime("%d.%m.%Y" if date_only else "%d.%m.%Y %H:%M")
    return local.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M")
