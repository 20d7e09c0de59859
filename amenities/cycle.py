"""A machine's cycle as a pure state machine: what the power readings (and their absence) mean.

    free --tap--> authorised --power > start_w--> running --power < end_w--> ending
                      |                              ^                        |
                      | no power for abandon_after_s  +---- power >= end_w ----+
                      v                                                        | below end_w
                  abandoned (nothing billed)                                   | for end_after_s
                                                                               v
    running or ending for max_s, a stop (credit, staff), lost readings  ---> done

A dryer's anti-crease tumbling draws power for a few seconds every minute or two: a pause shorter
than `end_after_s` returns the cycle from `ending` to `running`, so only a real end ends it. The
cycle ended when the power fell (`below_since`), not when we became sure of it: the wait is not
billed as running time.

No I/O and no clock: every step takes the instant it describes. `Cycle` is what the controller
stores after each step, so a restarted server resumes exactly where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any


class CycleState(StrEnum):
    AUTHORISED = "authorised"  # tapped, relay on, waiting for the machine to draw power
    RUNNING = "running"
    ENDING = "ending"  # power below end_w, not yet for end_after_s
    DONE = "done"  # ran and ended: billed
    ABANDONED = "abandoned"  # never started: released, nothing billed


OPEN_STATES = frozenset({CycleState.AUTHORISED, CycleState.RUNNING, CycleState.ENDING})


class EndReason(StrEnum):
    POWER_OFF = "power_off"  # the machine finished
    MAX_DURATION = "max_duration"
    ABANDONED = "abandoned"  # no power after the tap
    STOPPED = "stopped"  # asked to stop: credit ran out, or staff
    READINGS_LOST = "readings_lost"  # power could not be read for too long
    RELAY_FAULT = "relay_fault"  # the relay could not be switched on


@dataclass(frozen=True, slots=True)
class CycleSettings:
    """The contract's `cycle` block (devices.md), with its defaults."""

    poll_s: int = 5
    start_w: int = 10
    end_w: int = 5
    end_after_s: int = 180
    abandon_after_s: int = 600
    max_s: int = 14_400

    @classmethod
    def of(cls, block: dict[str, Any] | None) -> CycleSettings:
        """From the site file's block (validated there; absent keys take the defaults)."""
        return cls(**(block or {}))

    @property
    def readings_lost_after_s(self) -> int:
        """No power reading for this long ends a running cycle (billed to its last reading)."""
        return max(self.end_after_s, 3 * self.poll_s)


@dataclass(frozen=True, slots=True)
class Cycle:
    state: CycleState
    tapped_at: datetime
    started_at: datetime | None = None
    below_since: datetime | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    last_reading_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def billable(self) -> bool:
        """Whether the cycle ran: a cycle that never started costs nothing."""
        return self.started_at is not None

    def running_s(self, now: datetime) -> int:
        """Seconds of running time (power start to end, or to `now` while open)."""
        if self.started_at is None:
            return 0
        end = self.ended_at or now
        return max(0, int((end - self.started_at).total_seconds()))


def tapped(at: datetime) -> Cycle:
    """A cycle authorised by a tap at `at`: the relay is switched on, the machine is free to
    start."""
    return Cycle(CycleState.AUTHORISED, tapped_at=at)


def _end(cycle: Cycle, at: datetime, reason: EndReason) -> Cycle:
    if not cycle.billable:
        return replace(cycle, state=CycleState.ABANDONED, ended_at=at,
                       end_reason=EndReason.ABANDONED if reason is EndReason.POWER_OFF
                       else reason, below_since=None)
    return replace(cycle, state=CycleState.DONE, ended_at=at, end_reason=reason)


def on_power(cycle: Cycle, settings: CycleSettings, at: datetime, power_w: Decimal) -> Cycle:
    """The cycle after a power reading taken at `at`. Readings older than the last one
    are ignored (a late answer never moves the cycle backwards)."""
    if not cycle.open or (cycle.last_reading_at is not None and at <= cycle.last_reading_at):
        return cycle
    cycle = replace(cycle, last_reading_at=at)
    if cycle.state is CycleState.AUTHORISED:
        if power_w > settings.start_w:
            return replace(cycle, state=CycleState.RUNNING, started_at=at)
        return on_time(cycle, settings, at)
    if power_w >= settings.end_w:
        if cycle.state is CycleState.ENDING:
            cycle = replace(cycle, state=CycleState.RUNNING, below_since=None)
        return on_time(cycle, settings, at)
    if cycle.state is CycleState.RUNNING:
        cycle = replace(cycle, state=CycleState.ENDING, below_since=at)
    return on_time(cycle, settings, at)


def on_time(cycle: Cycle, settings: CycleSettings, now: datetime) -> Cycle:
    """The cycle at `now` by the clock alone: abandoned, ended by the quiet, ended by the
    maximum, or ended because its power could not be read for too long."""
    if not cycle.open:
        return cycle
    if cycle.state is CycleState.AUTHORISED:
        if now - cycle.tapped_at >= timedelta(seconds=settings.abandon_after_s):
            return _end(cycle, cycle.tapped_at + timedelta(seconds=settings.abandon_after_s),
                        EndReason.ABANDONED)
        return cycle
    assert cycle.started_at is not None
    longest = cycle.started_at + timedelta(seconds=settings.max_s)
    if (
        cycle.state is CycleState.ENDING
        and cycle.below_since is not None
        and now - cycle.below_since >= timedelta(seconds=settings.end_after_s)
        and cycle.below_since <= longest
    ):
        return _end(cycle, cycle.below_since, EndReason.POWER_OFF)
    if now >= longest:
        return _end(cycle, longest, EndReason.MAX_DURATION)
    last = cycle.last_reading_at or cycle.started_at
    if now - last >= timedelta(seconds=settings.readings_lost_after_s):
        # Billed up to the last reading we have, never more.
        return _end(cycle, last, EndReason.READINGS_LOST)
    return cycle


def stopped(cycle: Cycle, at: datetime, reason: EndReason = EndReason.STOPPED) -> Cycle:
    """The cycle ended from outside (credit ran out, staff, a relay that failed) at `at`."""
    if not cycle.open:
        return cycle
    end = at
    if cycle.last_reading_at is not None and cycle.started_at is not None:
        # Nothing after the last reading is known: bill up to it, never beyond.
        end = max(cycle.started_at, min(at, cycle.last_reading_at))
    return _end(cycle, end, reason)
