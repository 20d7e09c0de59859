"""Many devices behind one line, polled in cycles (OpenEMS's bridge cycle, kept generic).

Each cycle first runs the writes queued since the last one, then every read whose period is
due, one after the other. A read is any async callable (a meter's `read_meter` bound to its
gateway and unit); what it returns goes to `on_result`, what it raises to `on_failure`. A failing
device does not stall the others: its read fails fast (its gateway backs the unit off) and the
cycle goes on. A cycle that takes longer than its period is reported: a log event, the
`overruns` counter and `on_overrun`, so an installer learns that the line carries more than it
can poll (too many meters, too short periods, a slow gateway).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import structlog

from amenities.drivers.capabilities import DeviceUnreachable

log = structlog.get_logger("amenities.poll")

T = TypeVar("T")
Clock = Callable[[], datetime]
#: A callback may be plain or async; an async one is awaited before the cycle goes on.
Callback = Callable[..., Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Overrun:
    """A cycle that took longer than its period."""

    started: datetime
    took_s: float
    cycle_s: float


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did: the keys written and read, in order, and how long it took."""

    started: datetime
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    failed: tuple[str, ...]
    took_s: float
    overrun: bool


@dataclass(slots=True)
class _Job(Generic[T]):
    key: str
    period_s: float
    read: Callable[[], Awaitable[T]]
    next_due: datetime | None = None  # None: never read, due now


@dataclass(slots=True)
class _Write:
    key: str
    action: Callable[[], Awaitable[object]]


@dataclass(slots=True)
class PollPlan(Generic[T]):
    """The reads (and queued writes) of the devices behind one line.

    `cycle_s` is the cycle period; a device's `period_s` is rounded up to whole cycles in
    effect (it is read in the first cycle at or after it is due). `clock` decides what is due
    and measures cycles; `on_result(key, value)`, `on_failure(key, error)` and
    `on_overrun(overrun)` may be plain or async callables.
    """

    cycle_s: float
    clock: Clock
    on_result: Callable[[str, T], Awaitable[None] | None]
    on_failure: Callable[[str, Exception], Awaitable[None] | None]
    on_overrun: Callable[[Overrun], Awaitable[None] | None] | None = None
    name: str = ""
    overruns: int = field(default=0, init=False)
    _jobs: dict[str, _Job[T]] = field(default_factory=dict, init=False, repr=False)
    _writes: list[_Write] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cycle_s <= 0:
            raise ValueError(f"cycle_s must be positive, not {self.cycle_s}")

    def add(self, key: str, period_s: float, read: Callable[[], Awaitable[T]]) -> None:
        """Read `key` every `period_s` seconds, from the next cycle on."""
        if period_s <= 0:
            raise ValueError(f"{key}: period_s must be positive, not {period_s}")
        if key in self._jobs:
            raise ValueError(f"{key} is already in the plan")
        self._jobs[key] = _Job(key, period_s, read)

    def remove(self, key: str) -> None:
        self._jobs.pop(key, None)

    @property
    def keys(self) -> list[str]:
        return list(self._jobs)

    def queue_write(self, key: str, action: Callable[[], Awaitable[object]]) -> None:
        """Run `action` at the start of the next cycle, before any read. Its failure goes to
        `on_failure(key, error)`; whatever it returns is the caller's own business."""
        self._writes.append(_Write(key, action))

    async def run_cycle(self) -> CycleReport:
        """One cycle: the queued writes, then each due read, in the order they were added."""
        started = self.clock()
        writes, self._writes = self._writes, []
        failed: list[str] = []
        for write in writes:
            try:
                await write.action()
            except Exception as error:
                failed.append(write.key)
                await self._deliver(self.on_failure, write.key, error)
        reads: list[str] = []
        for job in list(self._jobs.values()):
            if job.next_due is not None and job.next_due > started:
                continue
            reads.append(job.key)
            job.next_due = self._next_due(job, started)
            try:
                value = await job.read()
            except Exception as error:
                # DeviceUnreachable is the expected failure; anything else is a bug in a read
                # (a decoder, a profile) and is delivered the same way, so one device's bug is
                # its own recorded fault instead of stopping every device of the line.
                failed.append(job.key)
                if not isinstance(error, DeviceUnreachable):
                    log.error("poll_read_crashed", plan=self.name, key=job.key, exc_info=error)
                await self._deliver(self.on_failure, job.key, error)
            else:
                await self._deliver(self.on_result, job.key, value)
        took_s = (self.clock() - started).total_seconds()
        overrun = took_s > self.cycle_s
        if overrun:
            self.overruns += 1
            log.warning(
                "poll_cycle_overrun",
                plan=self.name,
                took_s=round(took_s, 3),
                cycle_s=self.cycle_s,
                reads=len(reads),
                overruns=self.overruns,
            )
            if self.on_overrun is not None:
                await self._deliver(self.on_overrun, Overrun(started, took_s, self.cycle_s))
        return CycleReport(
            started, tuple(w.key for w in writes), tuple(reads), tuple(failed), took_s, overrun
        )

    async def run(self, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Cycles until cancelled, each starting `cycle_s` after the previous one started (at
        once after an overrun: a late cycle is not made later still)."""
        while True:
            report = await self.run_cycle()
            rest = self.cycle_s - (self.clock() - report.started).total_seconds()
            await sleep(max(rest, 0.0))

    def _next_due(self, job: _Job[T], cycle_started: datetime) -> datetime:
        # On the job's own grid while the plan keeps up; from now on when it fell behind, so a
        # late plan does not read a device several times in a row to catch up.
        period = timedelta(seconds=job.period_s)
        scheduled = (job.next_due or cycle_started) + period
        return scheduled if scheduled > cycle_started else cycle_started + period

    async def _deliver(self, callback: Callback, *args: object) -> None:
        try:
            outcome = callback(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as error:
            # A failing callback (storage down) must not stop the other devices' polling.
            log.error("poll_callback_failed", plan=self.name, args=repr(args)[:200], exc_info=error)
