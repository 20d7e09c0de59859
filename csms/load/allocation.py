"""Who may draw how many amperes: a pure function of the connection's limit, the building's own
load and the open sessions (no I/O, no clock: `now` comes in).

Rules, per phase: the sum of the sessions' limits plus the building's load without the
wallboxes never exceeds `limit - reserve`. A session gets at least `min_current_a` (6 A, IEC
61851) or is paused (0 A); paused sessions are resumed in turn. Stations that cannot be
controlled (offline, profile rejected) count as drawing their maximum. Limits go down at once
and up only by at least `step_a` after `raise_hold_s`, so they do not flap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

PHASES = (1, 2, 3)
ZERO = Decimal(0)
WHOLE = Decimal(1)  # stations take whole amperes (many accept no tenths)


@dataclass(frozen=True, slots=True)
class LoadSettings:
    limit_a: Decimal  # per phase, the grid connection's fuse
    phases: int = 3
    reserve_a: Decimal = Decimal(0)
    min_current_a: Decimal = Decimal(6)
    strategy: str = "equal"  # equal | first-come | priority
    step_a: Decimal = Decimal(1)  # a raise smaller than this waits (hysteresis)
    raise_hold_s: int = 30  # no raise sooner than this after the last change
    # A paused session waiting longer than this makes the longest-running one yield to it.
    rotate_after_s: int = 900
    # Unused allocation: a car drawing well below its limit keeps its draw plus this.
    headroom_a: Decimal = Decimal(2)


@dataclass(frozen=True, slots=True)
class SessionLoad:
    key: str  # station and connector/EVSE
    phases: tuple[int, ...]  # the phases it draws on: (1, 2, 3) or e.g. (1,)
    max_current_a: Decimal  # the station's (or cable's) most per phase
    started_at: datetime
    drawn_a: Decimal | None = None  # what the car takes now (per phase), when reported
    priority: int = 0  # larger first (strategy "priority")
    departure: datetime | None = None  # 2.0.1 NotifyEVChargingNeeds
    controllable: bool = True  # False: offline or rejects profiles: counts as its maximum


@dataclass(frozen=True, slots=True)
class Granted:
    limit_a: Decimal  # 0: paused
    changed_at: datetime
    paused_since: datetime | None = None
    running_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Allocation:
    granted: dict[str, Granted] = field(default_factory=dict)
    available_a: dict[int, Decimal] = field(default_factory=dict)  # per phase, after base load

    def limit_of(self, key: str) -> Decimal | None:
        entry = self.granted.get(key)
        return entry.limit_a if entry is not None else None

    def used_a(self, phase: int, sessions: Sequence[SessionLoad]) -> Decimal:
        return sum((self.granted[s.key].limit_a for s in sessions
                    if phase in s.phases and s.key in self.granted), ZERO)


def _floor(value: Decimal) -> Decimal:
    return value.quantize(WHOLE, rounding=ROUND_FLOOR)


def _order(settings: LoadSettings, sessions: Sequence[SessionLoad],
           previous: Allocation, now: datetime) -> list[SessionLoad]:
    """Who comes first for a place: the strategy, then earliest departure, then whoever runs
    now (stability: taking turns is `_rotate`'s, after `rotate_after_s`), then the paused who
    waited longest, then the earliest start."""
    far = datetime.max.replace(tzinfo=now.tzinfo)

    def waited(s: SessionLoad) -> timedelta:
        entry = previous.granted.get(s.key)
        if entry is None or entry.paused_since is None:
            return timedelta(0)
        return now - entry.paused_since

    def key(s: SessionLoad) -> tuple[object, ...]:
        strategy: tuple[object, ...]
        if settings.strategy == "priority":
            strategy = (-s.priority, s.started_at)
        elif settings.strategy == "first-come":
            strategy = (s.started_at,)
        else:
            strategy = ()
        entry = previous.granted.get(s.key)
        running_now = entry is not None and entry.limit_a > 0
        return (*strategy, s.departure or far, not running_now, -waited(s), s.started_at, s.key)

    return sorted(sessions, key=key)


def allocate(
    settings: LoadSettings, base_load_a: dict[int, Decimal], sessions: Sequence[SessionLoad],
    previous: Allocation, now: datetime,
) -> Allocation:
    """Every session's limit now. `base_load_a`: the building's current per phase without the
    wallboxes (the building meter minus what the stations report)."""
    phases = PHASES[: settings.phases]
    capacity = {p: settings.limit_a - settings.reserve_a - max(base_load_a.get(p, ZERO), ZERO)
                for p in phases}
    fixed = [s for s in sessions if not s.controllable]
    for s in fixed:  # cannot be told: assume the worst
        for p in s.phases:
            capacity[p] -= s.max_current_a
    available = {p: max(capacity[p], ZERO) for p in phases}
    controlled = [s for s in sessions if s.controllable]

    # 1. Who runs: in order, while every phase of the session still has its minimum.
    left = dict(available)
    running: list[SessionLoad] = []
    for s in _order(settings, controlled, previous, now):
        entry = previous.granted.get(s.key)
        was_paused = entry is not None and entry.limit_a == 0
        # Resuming needs the minimum plus a step of margin, so a resume is not undone at once.
        need = settings.min_current_a + (settings.step_a if was_paused else ZERO)
        if all(left.get(p, ZERO) >= need for p in s.phases):
            running.append(s)
            # Equal share keeps only the minimum aside; the other strategies serve in order,
            # so the earlier (or higher) session's whole want is set aside first.
            take = settings.min_current_a
            if settings.strategy != "equal":
                take = max(take, min([_want(settings, s), *(left[p] for p in s.phases)]))
            for p in s.phases:
                left[p] -= take
    running = _rotate(settings, controlled, running, previous, now, available)

    # 2. How much: everybody's minimum, then the rest by the strategy.
    wanted = {s.key: _want(settings, s) for s in running}
    share = {s.key: settings.min_current_a for s in running}
    left = dict(available)
    for s in running:
        for p in s.phases:
            left[p] -= settings.min_current_a
    if settings.strategy == "equal":
        _water_fill(running, wanted, share, left)
    else:
        for s in _order(settings, running, previous, now):
            extra = min([wanted[s.key] - share[s.key], *(left[p] for p in s.phases)])
            if extra > 0:
                share[s.key] += extra
                for p in s.phases:
                    left[p] -= extra

    # 3. Hysteresis against the previous allocation; pauses and resumes noted.
    granted: dict[str, Granted] = {}
    for s in controlled:
        target = _floor(share[s.key]) if s.key in share else ZERO
        entry = previous.granted.get(s.key)
        granted[s.key] = _settle(settings, target, entry, now)
    # A held-back raise leaves room unused, never more than was free: limits only went down.
    return Allocation(granted=granted, available_a=available)


def _want(settings: LoadSettings, s: SessionLoad) -> Decimal:
    """The most worth giving: the station's maximum, or, for a car drawing well below its
    limit, its draw plus headroom (the rest goes to others)."""
    if s.drawn_a is not None and s.drawn_a + settings.headroom_a < s.max_current_a:
        return max(settings.min_current_a, s.drawn_a + settings.headroom_a)
    return s.max_current_a


def _water_fill(running: list[SessionLoad], wanted: dict[str, Decimal],
                share: dict[str, Decimal], left: dict[int, Decimal]) -> None:
    """Raise every unsatisfied session equally until its want or a phase runs out."""
    active = [s for s in running if wanted[s.key] > share[s.key]]
    while active:
        per_phase = {p: sum(1 for s in active if p in s.phases) for p in left}
        room = [left[p] / per_phase[p] for p in left if per_phase[p]]
        step = min([*room, *(wanted[s.key] - share[s.key] for s in active)])
        if step <= Decimal("0.01"):
            break
        for s in active:
            share[s.key] += step
            for p in s.phases:
                left[p] -= step
        active = [s for s in active if wanted[s.key] - share[s.key] > Decimal("0.01")]


def _rotate(settings: LoadSettings, controlled: list[SessionLoad], running: list[SessionLoad],
            previous: Allocation, now: datetime, available: dict[int, Decimal]
            ) -> list[SessionLoad]:
    """When sessions wait paused for longer than `rotate_after_s`, the one running longest
    since its last resume gives its place to the one waiting longest (fair over the night)."""
    waiting = [s for s in controlled if s not in running]
    if not waiting or not running:
        return running
    def paused_for(s: SessionLoad) -> timedelta:
        entry = previous.granted.get(s.key)
        since = entry.paused_since if entry is not None and entry.paused_since else now
        return now - since

    def running_for(s: SessionLoad) -> timedelta:
        entry = previous.granted.get(s.key)
        since = entry.running_since if entry is not None and entry.running_since else now
        return now - since

    longest_waiting = max(waiting, key=paused_for)
    if paused_for(longest_waiting) < timedelta(seconds=settings.rotate_after_s):
        return running
    longest_running = max(running, key=running_for)
    if running_for(longest_running) < timedelta(seconds=settings.rotate_after_s):
        return running
    swapped = [s for s in running if s is not longest_running] + [longest_waiting]
    # The newcomer must fit in the place it takes.
    for p in PHASES[: settings.phases]:
        used = sum(settings.min_current_a for s in swapped if p in s.phases)
        if used > available[p]:
            return running
    return swapped


def _settle(settings: LoadSettings, target: Decimal, entry: Granted | None,
            now: datetime) -> Granted:
    if entry is None:
        return Granted(target, now, paused_since=now if target == 0 else None,
                       running_since=now if target > 0 else None)
    current = entry.limit_a
    if target == current:
        return entry
    if target < current or current == 0:
        # Down at once (the fuse comes first); a resume is decided in step 1 already.
        return Granted(target, now,
                       paused_since=(entry.paused_since or now) if target == 0 else None,
                       running_since=now if current == 0 else entry.running_since)
    # Up: only by a real step, and not right after the last change.
    held = now - entry.changed_at < timedelta(seconds=settings.raise_hold_s)
    if target - current < settings.step_a or held:
        return entry
    return replace(entry, limit_a=target, changed_at=now)
