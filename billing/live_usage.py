"""A running use's usage and bill, grown message by message instead of rebuilt from every point:
pure, no I/O.

`LiveUsage.of(points, start, tariff)` is `build_usage` + `pricing.rate` over the points so far;
`grow(points)` takes the next message's points and returns the same as a rebuild over all of
them would, at the cost of the new points only. It takes them only when that is certain: every
new point lies after every point so far, the use's last instant so far was a register reading,
and every new instant carries one (a state change alone between readings is interpolated by
`build_usage` once the next reading arrives, and a reading before the last changes the past).
Anything else raises `NotAppendable`, and the caller rebuilds from all points: correctness never
depends on the arrival order, only the speed does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.usage import CHARGING_STATES, Point, build_usage, plausible_wh
from pricing import Bill, LiveRater, Sample, Tariff

_MICROSECOND = timedelta(microseconds=1)


class NotAppendable(Exception):
    """The points cannot be appended; rebuild from all of them."""


@dataclass(frozen=True, slots=True)
class UsageFigures:
    """What the flow stores of a use's usage, and the last sample (for displays)."""

    energy_wh: int
    duration_s: int
    idle_s: int
    last_register_wh: int
    register_reset: bool
    last: Sample
    implausible_wh: int = 0


class LiveUsage:
    __slots__ = (
        "_first", "_idle_us", "_implausible", "_last", "_last_is_reading", "_last_raw",
        "_max_power_w", "_offset", "_rater", "_reset", "_state", "bill",
    )

    def __init__(self, tariff: Tariff, max_power_w: int | None = None) -> None:
        self._rater = LiveRater(tariff)
        self._first: Sample | None = None
        self._last: Sample | None = None
        self._last_is_reading = False
        self._last_raw = 0
        self._offset = 0
        self._reset = False
        self._state: str | None = None
        self._idle_us = 0
        self._max_power_w = max_power_w
        self._implausible = 0
        self.bill: Bill | None = None

    @classmethod
    def of(
        cls, points: Iterable[Point], *, start: datetime | None, tariff: Tariff,
        max_power_w: int | None = None,
    ) -> LiveUsage | None:
        """Built from all points so far (the slow path, once); None if there is no usage."""
        points = list(points)
        built = build_usage(points, start=start, max_power_w=max_power_w)
        if built is None:
            return None
        live = cls(tariff, max_power_w)
        live._implausible = built.implausible_wh
        for sample in built.usage.samples:
            live._add(sample)
        inside = [p for p in points if start is None or p.at >= start]
        readings = sorted((p.at, p.register_wh) for p in inside if p.register_wh is not None)
        states = sorted((p.at, p.state) for p in inside if p.state is not None)
        last_at = built.usage.samples[-1].at
        live._last_is_reading = bool(readings) and readings[-1][0] == last_at
        live._reset = built.register_reset
        if readings:
            # Where the normalised register stands: the raw value and the offset behind it.
            live._last_raw = max(wh for at, wh in readings if at == readings[-1][0])
            live._offset = built.last_register_wh - live._last_raw
        live._state = states[-1][1] if states else None
        return live

    def _add(self, sample: Sample) -> None:
        if self._last is not None and not sample.charging:
            self._idle_us += (sample.at - self._last.at) // _MICROSECOND
        if self._first is None:
            self._first = sample
        self._last = sample
        self.bill = self._rater.add(sample)

    def grow(self, points: Iterable[Point]) -> None:
        """Append one message's points (see the module's conditions), or raise NotAppendable
        and leave everything as it was."""
        by_instant: dict[datetime, tuple[int | None, str | None]] = {}
        for point in points:
            register, state = by_instant.get(point.at, (None, None))
            if point.register_wh is not None:
                register = (
                    point.register_wh if register is None else max(register, point.register_wh)
                )
            if point.state is not None:
                state = point.state if state is None else max(state, point.state)
            by_instant[point.at] = (register, state)
        last = self._last
        if last is None or not self._last_is_reading:
            raise NotAppendable("the last instant so far is not a register reading")
        if not by_instant:
            return
        instants = sorted(by_instant)
        if instants[0] <= last.at or any(by_instant[at][0] is None for at in instants):
            raise NotAppendable("a point before the last, or an instant without a reading")
        for at in instants:
            raw, state = by_instant[at]
            assert raw is not None
            previous = self._last
            assert previous is not None
            offset, reset, implausible = self._offset, self._reset, self._implausible
            if raw < self._last_raw:
                offset += self._last_raw - raw
                reset = True
            value = raw + offset
            if self._max_power_w is not None:
                most = previous.energy_wh + plausible_wh(self._max_power_w, at - previous.at)
                if value > most:
                    implausible += value - most
                    offset -= value - most
                    value = most
            energy = max(value, previous.energy_wh)
            charging = (
                (self._state is None or self._state in CHARGING_STATES)
                and value > previous.energy_wh
            )
            self._add(Sample(at, energy, charging))
            self._last_raw, self._offset, self._reset = raw, offset, reset
            self._implausible = implausible
            if state is not None:
                self._state = state

    def figures(self) -> UsageFigures:
        assert self._first is not None and self._last is not None
        return UsageFigures(
            energy_wh=self._last.energy_wh - self._first.energy_wh,
            duration_s=int((self._last.at - self._first.at).total_seconds()),
            idle_s=int(self._idle_us // 1_000_000),
            last_register_wh=self._last_raw + self._offset,
            register_reset=self._reset,
            last=self._last,
            implausible_wh=self._implausible,
        )

