"""A tariff's preview before it is published: what a session costs against minutes and against
kWh (curves), what typical sessions cost (worked examples), and, for interval tables, what each
interval adds, all from the rating function billing uses. Pure: the session start comes in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pricing.curve import cost_curve
from pricing.model import Tariff
from pricing.rating import rate
from pricing.usage import Sample, Usage

EXAMPLES: tuple[tuple[int, int], ...] = (
    # (minutes, Wh): a failed start, a short top-up, an hour at 11 kW, an evening, a night
    (2, 150), (15, 2_750), (60, 11_000), (180, 33_000), (600, 44_000),
)


@dataclass(frozen=True, slots=True)
class Example:
    minutes: int
    kwh: Decimal
    net: Decimal
    gross: Decimal


@dataclass(frozen=True, slots=True)
class IntervalRow:
    dimension: str
    interval: int  # 1-based, as interval tables count
    adds_net: Decimal  # what this interval adds to the session's net cost
    total_net: Decimal


@dataclass(frozen=True, slots=True)
class Preview:
    by_minutes: list[tuple[Decimal, Decimal]]  # (minutes, gross) at the given power
    by_kwh: list[tuple[Decimal, Decimal]]  # (kWh, gross)
    examples: list[Example]
    intervals: list[IntervalRow]
    power_w: int


def _session(start: datetime, seconds: int, wh: int) -> Usage:
    """A constant draw: a reading every minute, the last at the end."""
    samples = [Sample(start, 0, True)]
    step = 60
    at = step
    while at < seconds:
        samples.append(Sample(start + timedelta(seconds=at), wh * at // seconds, True))
        at += step
    samples.append(Sample(start + timedelta(seconds=seconds), wh, True))
    return Usage.of(samples)


def preview(tariff: Tariff, document: dict[str, Any], start: datetime, *,
            power_w: int = 11_000, minutes: int = 240) -> Preview:
    """`start`: a representative start (time-of-use windows apply from it)."""
    session = _session(start, minutes * 60, power_w * minutes // 60)
    step = max(1, minutes // 48)
    by_minutes = [(p.x, p.gross) for p in cost_curve(tariff, session, "time", step)]
    by_kwh = [(p.x, p.gross) for p in cost_curve(tariff, session, "energy",
                                                 max(100, power_w * minutes // 60 // 48))]
    examples = []
    for mins, wh in EXAMPLES:
        bill = rate(tariff, _session(start, mins * 60, wh))
        examples.append(Example(mins, Decimal(wh) / 1000, bill.net, bill.gross))
    return Preview(by_minutes, by_kwh, examples, _interval_rows(tariff, document, start),
                   power_w)


def _interval_rows(tariff: Tariff, document: dict[str, Any], start: datetime
                   ) -> list[IntervalRow]:
    """For each interval-table component: intervals 1 to one past its last row, alone (the other
    dimension at zero), with what each adds: the table as the owner wrote it, read back from
    the rating itself."""
    rows: list[IntervalRow] = []
    for component in document.get("components") or []:
        if "intervals" not in component:
            continue
        dimension = str(component.get("dimension"))
        last = max(int(n) for n, _ in component["intervals"]) + 1
        previous = Decimal(0)
        for n in range(1, last + 1):
            if dimension == "time":
                seconds = n * int(component["interval_s"])
                usage = Usage.of([Sample(start, 0, True),
                                  Sample(start + timedelta(seconds=seconds), 0, True)])
            elif dimension == "energy":
                wh = n * int(component["interval_wh"])
                usage = Usage.of([Sample(start, 0, True),
                                  Sample(start + timedelta(seconds=1), wh, True)])
            else:
                break
            bill = rate(tariff, usage)
            net = sum((line.net for line in bill.lines if line.dimension == dimension),
                      Decimal(0))
            rows.append(IntervalRow(dimension, n, net - previous, net))
            previous = net
    return rows
