"""Power profiles of real machines, as segments of (seconds, watts), sampled like the
controller polls them. Shapes after measured traces of domestic machines: a washer heats in
peaks (the heater cycles on and off around 2 kW), tumbles at 100-250 W with short pauses while
the drum reverses and water fills, and spins at 300-600 W; a condenser dryer heats at about
2 kW, then tumbles against creasing for ~10 s every ~2 min; a machine that is never started
draws its standby power (~1 W) only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

Profile = list[tuple[int, int]]

# 60 °C cotton wash, about 1 h 50 min.
WASHER: Profile = [
    (40, 1),  # door closed, programme chosen
    (90, 8),  # water inlet valve only (below start_w)
    *[(60, 2100), (30, 180), (45, 2050), (30, 160)] * 4,  # heating peaks with tumbling
    *[(50, 190), (12, 2), (50, 210), (15, 3)] * 30,  # washing: reversals pause the drum
    *[(120, 220), (40, 4), (180, 450), (60, 3)] * 3,  # rinses with short spins
    (420, 580),  # final spin
    (30, 6),  # pump-out (between end_w and start_w: still running)
    (900, 1),  # done, standby
]

# Condenser dryer: 75 min heating, then anti-crease tumbling for 60 min with 110 s pauses.
DRYER: Profile = [
    (20, 1),
    *[(300, 2050), (20, 400)] * 14,
    *[(10, 160), (110, 2)] * 30,  # anti-crease: pauses shorter than end_after_s (180)
    (1200, 1),
]

# Tapped, but nobody pressed start: standby only.
NEVER_STARTED: Profile = [(1800, 1)]


def samples(profile: Profile, start: datetime, poll_s: int) -> Iterator[tuple[datetime, Decimal]]:
    """The profile read every `poll_s` seconds from `start`: (instant, watts)."""
    edges: list[tuple[int, int]] = []
    t = 0
    for seconds, watts in profile:
        edges.append((t, watts))
        t += seconds
    total = t
    index = 0
    for offset in range(0, total, poll_s):
        while index + 1 < len(edges) and edges[index + 1][0] <= offset:
            index += 1
        yield start + timedelta(seconds=offset), Decimal(edges[index][1])


def duration_s(profile: Profile) -> int:
    return sum(seconds for seconds, _ in profile)


def first_above(profile: Profile, watts: int) -> int:
    """Seconds from the start until the power first exceeds `watts`."""
    t = 0
    for seconds, w in profile:
        if w > watts:
            return t
        t += seconds
    raise ValueError("never above")


def last_above(profile: Profile, watts: int) -> int:
    """Seconds from the start until the power last falls below `watts`."""
    t = 0
    end = 0
    for seconds, w in profile:
        t += seconds
        if w >= watts:
            end = t
    return end
