"""Cost curves: what a session would have cost had it stopped earlier, minute by minute or kWh
by kWh. This is the data of a tariff's price preview, so an owner can check a new tariff
against a typical session before publishing it."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pricing.bill import Number
from pricing.errors import TariffError
from pricing.model import Tariff
from pricing.rating import _energy_at, _Engine, _idle_at
from pricing.timeofuse import US, datetime_of
from pricing.usage import Usage

Axis = Literal["time", "energy"]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    x: Decimal  # minutes (time axis) or kWh (energy axis) since the session start
    at: datetime
    net: Decimal
    gross: Decimal


@dataclass(frozen=True, slots=True)
class _Prefix:
    times: tuple[int, ...]
    energy: tuple[Number, ...]
    idle: tuple[int, ...]
    charging: tuple[bool, ...]


def _prefix(usage: Usage, cut: int) -> _Prefix:
    """The session up to instant `cut`, ending in an interpolated reading."""
    keep = bisect_left(usage.times, cut)
    times = (*usage.times[:keep], cut)
    energy = (*usage.energy[:keep], _energy_at(usage, cut))
    idle = (*usage.idle[:keep], _idle_at(usage, cut))
    charging = (*usage.charging[:keep], usage.charging[keep] if keep < len(usage.times) else True)
    return _Prefix(times, energy, idle, charging)


def cost_curve(tariff: Tariff, usage: Usage, axis: Axis = "time", step: int | None = None
               ) -> tuple[CurvePoint, ...]:
    """Cost of the session's prefixes every `step` minutes (time) or Wh (energy; default 100)."""
    if step is None:
        step = 1 if axis == "time" else 100
    if step < 1:
        raise TariffError([f"step: must be >= 1, got {step}"])
    start, end = usage.times[0], usage.times[-1]
    cuts: list[tuple[Decimal, int]] = []
    if axis == "time":
        length = step * 60 * US
        offset = 0
        while start + offset < end:
            cuts.append((Decimal(offset // (60 * US)), start + offset))
            offset += length
        cuts.append((Decimal(end - start) / (60 * US), end))
    else:
        first, last = usage.energy[0], usage.energy[-1]
        target = first
        j = 0
        while target < last:
            while usage.energy[j] < target:
                j += 1
            if usage.energy[j] == target or j == 0:
                # the first instant the register shows `target`
                k = usage.energy.index(usage.energy[j])
                instant = usage.times[k]
            else:
                rise = usage.energy[j] - usage.energy[j - 1]
                span = usage.times[j] - usage.times[j - 1]
                instant = usage.times[j - 1] + -(-(target - usage.energy[j - 1]) * span // rise)
            cuts.append((Decimal(target - first) / 1000, instant))
            target += step
        cuts.append((Decimal(last - first) / 1000, end))
    points: list[CurvePoint] = []
    for x, cut in cuts:
        series = _prefix(usage, cut)
        engine = _Engine(tariff, series)
        engine.settle(series)
        bill = engine.bill(series)
        zone = tariff.plan.calendar.tz if tariff.plan.calendar else None
        points.append(CurvePoint(x, datetime_of(cut, zone), bill.net, bill.gross))
    return tuple(points)
