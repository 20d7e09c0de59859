"""A use's usage for pricing, built from the points the device reported: pure, no I/O.

The result depends only on the set of points, never on the order they arrived in, so a replayed,
duplicated or reordered message stream bills exactly like the clean one:

- points are ordered by the station's own instants (`at`), never by arrival;
- the energy register is normalised: a register that runs backwards (a reset, a replaced
  meter) continues from the value before it, so the session's energy never decreases;
- a span is idle (pricing's `charging=False`) when the connector state in effect at its start
  is not `Charging` (SuspendedEV, SuspendedEVSE, Finishing, EVConnected, Idle ...) or when the
  register did not grow over the meter interval around it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pricing import Sample, Usage

CHARGING_STATES = frozenset({"Charging"})

# A station clock this far ahead of our arrival time, or before EARLIEST, cannot be right.
FUTURE_TOLERANCE = timedelta(minutes=15)
# Offline transactions arrive late, but not by more than this.
PAST_TOLERANCE = timedelta(days=31)
EARLIEST = datetime(2015, 1, 1, tzinfo=UTC)


def effective_time(station_at: datetime | None, arrival: datetime) -> tuple[datetime, bool]:
    """The instant to bill a point at, and whether the station's own was replaced."""
    if station_at is None:
        return arrival, True
    if (
        station_at < EARLIEST
        or station_at > arrival + FUTURE_TOLERANCE
        or station_at < arrival - PAST_TOLERANCE
    ):
        return arrival, True
    return station_at, False


def _us(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    register_wh: int | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class BuiltUsage:
    usage: Usage
    energy_wh: int
    idle_s: int
    duration_s: int
    # The last register reading (normalised), and whether the register ran backwards.
    last_register_wh: int
    register_reset: bool
    # Energy the readings claim beyond what the device can deliver in the time between them
    # (`max_power_w`): left out of the usage, for staff to review.
    implausible_wh: int = 0


def plausible_wh(max_power_w: int, span: timedelta) -> int:
    """The most energy (Wh, rounded up) a device of `max_power_w` delivers in `span`."""
    return -(-max_power_w * _us(span) // 3_600_000_000)


def _normalised_meter(
    points: list[Point], max_power_w: int | None = None
) -> tuple[list[tuple[datetime, int]], bool, int]:
    by_instant: dict[datetime, int] = {}
    for point in points:
        if point.register_wh is not None:
            previous = by_instant.get(point.at)
            by_instant[point.at] = (
                point.register_wh if previous is None else max(previous, point.register_wh)
            )
    meter: list[tuple[datetime, int]] = []
    offset = 0
    reset = False
    implausible = 0
    last_raw: int | None = None
    for at in sorted(by_instant):
        raw = by_instant[at]
        if last_raw is not None and raw < last_raw:
            # Continue from where the register stood: the reset span counts no energy.
            offset += last_raw - raw
            reset = True
        value = raw + offset
        if max_power_w is not None and meter:
            before_at, before = meter[-1]
            most = before + plausible_wh(max_power_w, at - before_at)
            if value > most:
                # More than the device can deliver: only the plausible part counts.
                implausible += value - most
                offset -= value - most
                value = most
        last_raw = raw
        meter.append((at, value))
    return meter, reset, implausible


def build_usage(
    points: Iterable[Point],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_power_w: int | None = None,
) -> BuiltUsage | None:
    """The session's `Usage` from its points within [start, end]; None if there is none.

    `start` and `end` (the station's Started/Stopped instants) bound the session: points outside
    are not part of it (meter values after the stop), and the session runs from `start` to `end`
    even when no reading was taken exactly then. With `max_power_w`, a reading that claims more
    energy since the one before than the device can deliver in that time counts only the
    plausible part (`implausible_wh` says how much was left out).
    """
    inside = [
        p
        for p in points
        if (start is None or p.at >= start) and (end is None or p.at <= end)
    ]
    meter, reset, implausible = _normalised_meter(inside, max_power_w)
    meter_times = [at for at, _ in meter]
    states: dict[datetime, str] = {}
    for point in sorted(
        (p for p in inside if p.state is not None), key=lambda p: (p.at, p.state or "")
    ):
        assert point.state is not None
        # Deterministic for several states at one instant: the last in (instant, name) order.
        states[point.at] = point.state
    instants = set(meter_times) | set(states)
    if start is not None and instants and start < min(instants):
        instants.add(start)
    if end is not None and instants and end > max(instants):
        instants.add(end)
    if not instants:
        if start is None:
            return None
        instants = {start} | ({end} if end is not None else set())
    timeline = sorted(instants)
    state_times = sorted(states)

    def energy_at(at: datetime) -> tuple[int, bool]:
        """Normalised register at `at` (interpolated inside a meter interval, rounded down)."""
        if not meter:
            return 0, False
        index = bisect.bisect_left(meter_times, at)
        if index < len(meter) and meter_times[index] == at:
            return meter[index][1], True
        if index == 0:
            return meter[0][1], False
        if index == len(meter):
            return meter[-1][1], False
        (t0, e0), (t1, e1) = meter[index - 1], meter[index]
        return e0 + (e1 - e0) * _us(at - t0) // _us(t1 - t0), True

    def state_at(at: datetime) -> str | None:
        index = bisect.bisect_right(state_times, at)
        return states[state_times[index - 1]] if index else None

    def meter_grew(left: datetime, right: datetime) -> bool:
        """Whether the register grew over the meter interval holding (left, right]."""
        index = bisect.bisect_left(meter_times, right)
        if index == len(meter) or index == 0:
            return True  # outside the readings: the state alone decides
        before = bisect.bisect_right(meter_times, left) - 1
        if before < 0:
            return True
        return meter[index][1] > meter[before][1]

    samples: list[Sample] = []
    previous: datetime | None = None
    for at in timeline:
        energy, _known = energy_at(at)
        if samples:
            energy = max(energy, samples[-1].energy_wh)
        charging = True
        if previous is not None:
            state = state_at(previous)
            charging = (state is None or state in CHARGING_STATES) and meter_grew(previous, at)
        samples.append(Sample(at, energy, charging))
        previous = at
    usage = Usage.of(samples)
    idle_us = usage.idle[-1]
    duration = timeline[-1] - timeline[0]
    return BuiltUsage(
        usage=usage,
        energy_wh=samples[-1].energy_wh - samples[0].energy_wh,
        idle_s=int(idle_us // 1_000_000),
        duration_s=int(duration.total_seconds()),
        last_register_wh=meter[-1][1] if meter else samples[-1].energy_wh,
        register_reset=reset,
        implausible_wh=implausible,
    )


def usage_document(usage: Usage) -> dict[str, list[dict[str, object]]]:
    """The usage in the contract's form (what `volthaus price` reads)."""
    return {
        "samples": [
            {
                "at": sample.at.astimezone(UTC).isoformat(),
                "energy_wh": sample.energy_wh,
                "charging": sample.charging,
            }
            for sample in usage.samples
        ]
    }
