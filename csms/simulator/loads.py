"""What an emulated device's load draws over time, as curves that can be integrated exactly.

Emulators integrate lazily (nothing runs in the background): whenever a device is looked at,
it asks its curve for the energy drawn since it last looked. So a curve answers both the power
at an instant and the exact energy between two instants, and a fake clock may jump an hour at
once. `t` is seconds since the curve's origin (the owner decides: a meter's creation, the
moment a relay switched a machine on).

- `ConstantLoad`: a fixed draw (the tests' loads).
- `Programme`: steps of (seconds, watts), then a standby draw forever: a machine's cycle.
  `WASHER` and `DRYER` are compressed cycles (under three minutes) for demos, with the shape
  the cycle controller looks for: a few seconds of low power, ~2 kW heating, ~200 W tumbling,
  a few seconds below 5 W, then 1 W standby.
- `HouseholdLoad`: a flat's draw wandering slowly between two bounds (a mean plus two slow
  sine swings, so its integral is exact); `household_load(seed)` picks the swings.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class LoadCurve(Protocol):
    def watts_at(self, t: float) -> float:
        """The draw at `t` seconds after the origin."""
        ...

    def energy_ws(self, start: float, end: float) -> float:
        """The energy drawn from `start` to `end` (seconds after the origin), in Ws."""
        ...


@dataclass(frozen=True, slots=True)
class ConstantLoad:
    watts: float

    def __post_init__(self) -> None:
        if self.watts < 0:
            raise ValueError("a load draws, it does not feed")

    def watts_at(self, t: float) -> float:
        return self.watts

    def energy_ws(self, start: float, end: float) -> float:
        return self.watts * max(0.0, end - start)


@dataclass(frozen=True, slots=True)
class Programme:
    """A machine's cycle: each step draws its watts for its seconds, then `standby_w` for good."""

    name: str
    steps: tuple[tuple[float, float], ...]  # (seconds, watts)
    standby_w: float = 1.0
    _edges: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if any(seconds <= 0 or watts < 0 for seconds, watts in self.steps) or self.standby_w < 0:
            raise ValueError(f"programme {self.name}: steps need positive seconds, watts >= 0")
        edges = [0.0]
        for seconds, _ in self.steps:
            edges.append(edges[-1] + seconds)
        object.__setattr__(self, "_edges", tuple(edges))

    @property
    def duration_s(self) -> float:
        """Until standby."""
        return self._edges[-1]

    def watts_at(self, t: float) -> float:
        if t < 0 or t >= self.duration_s:
            return self.standby_w if t >= 0 else 0.0
        return self.steps[bisect.bisect_right(self._edges, t) - 1][1]

    def energy_ws(self, start: float, end: float) -> float:
        start, end = max(start, 0.0), max(end, 0.0)
        if end <= start:
            return 0.0
        total = 0.0
        for (seconds, watts), begins in zip(self.steps, self._edges, strict=False):
            overlap = min(end, begins + seconds) - max(start, begins)
            if overlap > 0:
                total += watts * overlap
        tail = end - max(start, self.duration_s)
        if tail > 0:
            total += self.standby_w * tail
        return total


# Compressed from the shape of measured domestic cycles (tests/amenities/power_profiles.py has
# the full-length ones): a demo cycle is over in under three minutes.
WASHER = Programme(
    "washer",
    (
        (5, 6.0),  # door lock, programme chosen, inlet valve
        (50, 2050.0),  # heating the water
        (45, 210.0),  # washing: the drum tumbles
        (20, 480.0),  # spin
        (12, 3.0),  # pump-out done, door unlocking: below end_w
    ),
)
DRYER = Programme(
    "dryer",
    (
        (5, 6.0),  # door closed, programme chosen
        (80, 2150.0),  # heating
        (40, 190.0),  # cool-down tumbling
        (12, 3.0),  # finished, display on: below end_w
    ),
)
OTHER = Programme("other", ((5, 6.0), (60, 400.0), (12, 3.0)))

PROGRAMMES: dict[str, Programme] = {"washer": WASHER, "dryer": DRYER, "other": OTHER}


@dataclass(frozen=True, slots=True)
class Swing:
    amplitude_w: float
    period_s: float
    phase: float  # radians

    def watts_at(self, t: float) -> float:
        return self.amplitude_w * math.sin(2 * math.pi * t / self.period_s + self.phase)

    def energy_ws(self, start: float, end: float) -> float:
        omega = 2 * math.pi / self.period_s
        return (
            self.amplitude_w
            / omega
            * (math.cos(omega * start + self.phase) - math.cos(omega * end + self.phase))
        )


@dataclass(frozen=True, slots=True)
class HouseholdLoad:
    """`mean_w` plus slow swings; stays within mean +- the swings' amplitudes together."""

    mean_w: float
    swings: Sequence[Swing] = ()

    def __post_init__(self) -> None:
        if self.mean_w - sum(abs(s.amplitude_w) for s in self.swings) < 0:
            raise ValueError("a household load never goes below 0 W")

    def watts_at(self, t: float) -> float:
        return self.mean_w + sum(swing.watts_at(t) for swing in self.swings)

    def energy_ws(self, start: float, end: float) -> float:
        if end <= start:
            return 0.0
        return self.mean_w * (end - start) + sum(s.energy_ws(start, end) for s in self.swings)


def household_load(seed: int, *, low_w: float = 150.0, high_w: float = 900.0) -> HouseholdLoad:
    """A flat's draw between `low_w` and `high_w`, changing over tens of minutes; the same
    `seed` gives the same flat."""
    if not 0 <= low_w < high_w:
        raise ValueError("need 0 <= low_w < high_w")
    chooser = random.Random(seed)
    half = (high_w - low_w) / 2
    share = chooser.uniform(0.55, 0.75)  # of the swing: the slow one, the rest the faster one
    return HouseholdLoad(
        mean_w=low_w + half,
        swings=(
            Swing(half * share, chooser.uniform(40, 90) * 60, chooser.uniform(0, 2 * math.pi)),
            Swing(half * (1 - share), chooser.uniform(8, 20) * 60, chooser.uniform(0, 2 * math.pi)),
        ),
    )
