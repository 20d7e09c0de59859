"""Hypothesis strategies: random tariffs (as documents) and sessions around tricky instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from pricing import Sample, Tariff, load_tariff
from tests.pricing.documents import VIENNA

PRICES = st.sampled_from(["0", "0.05", "0.1251", "0.25", "0.3", "1", "2.50", "6.00", "0.0417"])
WINDOWS: list[dict[str, Any]] = [
    {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "06:00", "to": "22:00"},
    {"from": "22:00", "to": "06:00"},
    {"days": ["sat", "sun", "holiday"]},
    {"days": ["fri"], "from": "21:45", "to": "02:30"},
    {"from": "02:30", "to": "03:15"},  # inside the DST gap and fold
]
STARTS = [
    datetime(2026, 3, 2, 5, 50, tzinfo=VIENNA),  # Monday morning
    datetime(2026, 3, 6, 21, 30, tzinfo=VIENNA),  # Friday night
    datetime(2026, 3, 29, 1, 20, tzinfo=VIENNA),  # spring forward
    datetime(2026, 10, 25, 1, 40, tzinfo=VIENNA),  # fall back
    datetime(2026, 1, 5, 23, 10, tzinfo=VIENNA),  # into Epiphany
]


@st.composite
def tiers(draw: st.DrawFn, key: str, scale: int) -> list[dict[str, Any]]:
    starts = sorted(set(draw(st.lists(st.integers(1, 20), max_size=3))))
    result = [{key: 0, "price": draw(PRICES)}]
    result += [{key: s * scale, "price": draw(PRICES)} for s in starts]
    return result


@st.composite
def metered(draw: st.DrawFn, dimension: str, windows: bool, steps: bool) -> list[dict[str, Any]]:
    suffix = "wh" if dimension == "energy" else "s"
    scale = 500 if dimension == "energy" else 600
    rules: dict[str, Any] = {}
    if steps and draw(st.booleans()):
        rules[f"step_{suffix}"] = draw(st.sampled_from([60, 100, 900]))
    kind = draw(st.sampled_from(["none", "grace", "free"]))
    if kind != "none":
        rules[f"{kind}_{suffix}"] = draw(st.sampled_from([120, 200, 1800]))
    count = draw(st.integers(0, 2)) if windows else 0
    components = [
        {"dimension": dimension, "tiers": draw(tiers(f"from_{suffix}", scale)),
         "when": draw(st.sampled_from(WINDOWS)), **rules}
        for _ in range(count)
    ]
    if not components or draw(st.booleans()):
        components.append({"dimension": dimension,
                           "tiers": draw(tiers(f"from_{suffix}", scale)), **rules})
    return components


@st.composite
def tariff_docs(draw: st.DrawFn, *, windows: bool = True, steps: bool = True,
                extras: bool = True) -> dict[str, Any]:
    """A tariff document. Without `steps`, windowed dimensions keep step 1 (see the
    monotonicity property for why)."""
    components: list[dict[str, Any]] = []
    for dimension in draw(st.lists(st.sampled_from(["energy", "time", "idle"]), min_size=1,
                                   max_size=3, unique=True)):
        components += draw(metered(dimension, windows, steps or not windows))
    if draw(st.booleans()):
        when = draw(st.sampled_from([None, *WINDOWS])) if windows else None
        components.append({"dimension": "flat", "price": draw(PRICES),
                           **({"when": when} if when else {})})
    doc: dict[str, Any] = {"id": "p", "currency": "EUR", "vat_percent": draw(
        st.sampled_from(["0", "10", "19", "20"])), "components": components,
        "timezone": "Europe/Vienna", "country": "AT"}
    if extras and draw(st.booleans()):
        components.append({"dimension": "day", "price": draw(PRICES)})
    if extras and draw(st.booleans()):
        components.append({"dimension": "demand", "price": draw(PRICES)})
    if extras and draw(st.booleans()):
        doc["debt_recovery"] = {"per_kwh": draw(PRICES), "per_day": draw(PRICES)}
    if draw(st.booleans()):
        doc["min_price"] = draw(st.sampled_from(["0.50", "1"]))
    if draw(st.booleans()):
        doc["max_price"] = draw(st.sampled_from(["1", "5.00", "30"]))
        if "min_price" in doc and doc["min_price"] > doc["max_price"]:
            del doc["min_price"]
    return doc


def tariffs(**kwargs: bool) -> st.SearchStrategy[Tariff]:
    return tariff_docs(**kwargs).map(load_tariff)


@st.composite
def sessions(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 8,
             fractions: bool = True) -> list[Sample]:
    # Arithmetic in UTC: adding to a zoned datetime moves its wall clock, not real time.
    at = (draw(st.sampled_from(STARTS)).astimezone(UTC)
          + timedelta(minutes=draw(st.integers(0, 1440))))
    wh = draw(st.integers(0, 100_000))
    samples = [Sample(at.astimezone(VIENNA), wh)]
    for _ in range(draw(st.integers(min_size, max_size)) - 1):
        seconds = draw(st.integers(1, 7200))
        micros = draw(st.integers(0, 999_999)) if fractions and draw(st.booleans()) else 0
        at = at + timedelta(seconds=seconds, microseconds=micros)
        wh += draw(st.integers(0, 6000))
        samples.append(Sample(at.astimezone(VIENNA), wh, draw(st.booleans())))
    return samples
