"""Small builders for tariff and usage documents, so each test states only what it is about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pricing import Bill, Sample, Tariff, Usage, load_tariff, rate

VIENNA = ZoneInfo("Europe/Vienna")
# Monday 2 March 2026, 10:00 in Vienna: a plain working day away from DST and holidays.
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=VIENNA)


def tariff(*components: dict[str, Any], **top: Any) -> Tariff:
    doc: dict[str, Any] = {"id": "t", "currency": "EUR", "vat_percent": "20",
                           "components": list(components)}
    doc.update(top)
    return load_tariff(doc)


def energy(*tiers: tuple[int, str], **extra: Any) -> dict[str, Any]:
    return {"dimension": "energy", "tiers": [{"from_wh": f, "price": p} for f, p in tiers],
            **extra}


def time(*tiers: tuple[int, str], **extra: Any) -> dict[str, Any]:
    return {"dimension": "time", "tiers": [{"from_s": f, "price": p} for f, p in tiers], **extra}


def idle(*tiers: tuple[int, str], **extra: Any) -> dict[str, Any]:
    return {"dimension": "idle", "tiers": [{"from_s": f, "price": p} for f, p in tiers], **extra}


def flat(price: str, **extra: Any) -> dict[str, Any]:
    return {"dimension": "flat", "price": price, **extra}


def session(*points: tuple[float, int] | tuple[float, int, bool], start: datetime = MONDAY
            ) -> Usage:
    """Samples at `(real seconds after start, register Wh[, charging])`."""
    origin = start.astimezone(UTC)  # zoned datetime arithmetic would follow the wall clock
    samples = []
    for point in points:
        seconds, wh = point[0], point[1]
        charging = point[2] if len(point) > 2 else True
        samples.append(Sample((origin + timedelta(seconds=seconds)).astimezone(start.tzinfo),
                              wh, charging))
    return Usage.of(samples)


def price(t: Tariff, *points: tuple[float, int] | tuple[float, int, bool],
          start: datetime = MONDAY) -> Bill:
    return rate(t, session(*points, start=start))


def lines_of(bill: Bill, dimension: str) -> list[tuple[Any, ...]]:
    """(component, tier, quantity, net, note) of the bill's lines of one dimension."""
    return [(line.component, line.tier, line.quantity, line.net, line.note)
            for line in bill.lines if line.dimension == dimension]
