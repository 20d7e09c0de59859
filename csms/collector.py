"""The garbage collector's settings for a long-running node.

A node holding thousands of station connections keeps hundreds of thousands of long-lived
objects, and CPython's full collection walks all of them with the event loop stopped: 0.3-0.5 s
at 5,000 stations, measured, long enough to show in every station's p99. Two settings, applied
once the node has started:

* everything allocated while starting (modules, mapped classes, compiled schemas and
  statements) is frozen: it lives as long as the process, and no full collection walks it again;
* the youngest generation is collected after `gen0_threshold` allocations instead of CPython's
  700: a message's objects (payload dicts, futures, result rows) live for the few milliseconds
  its answer takes, and with 700 they are promoted to the old generations while still in use,
  which is what fills those generations and sets off the full collections.

Reference counting still frees almost everything at once; only objects in reference cycles wait
for a collection, and a younger collection of 50,000 objects takes a few milliseconds.

What stations bring once the node runs is frozen the same way after they settled:
`CollectorFreezer`, below.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import structlog

log = structlog.get_logger("csms.collector")

GEN0_THRESHOLD = 50_000


def tune_collector(gen0_threshold: int = GEN0_THRESHOLD) -> None:
    """Freeze what startup allocated and collect the youngest generation less often."""
    if gen0_threshold < 1:
        raise ValueError(f"gen0_threshold must be at least 1, got {gen0_threshold}")
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


# Freezing again once a fleet has settled

# A boot storm leaves each station's connection, session and handler objects (about a hundred
# per station) in the old generations, where every middle collection of the following minutes
# and every full one walks them: measured at 10,000 stations, middle collections of 241-272 ms
# and full ones of 856-904 ms, each with the event loop stopped, against 20 ms and 34 ms once
# they were frozen. So once the stations that came have booted, what they left is frozen too.
#
# The freeze itself moves the generations' lists, without walking them: collecting first would
# stop the loop for as long as the full collection it avoids (0.7 s at 10,000 stations), while
# the stations it has just admitted are sending. Frozen objects are still freed by reference
# counting; those in reference cycles wait until a refreeze, which collects everything first and
# comes once a quarter of the stations have left (that is, after a reconnect storm).

MIN_CHANGE = 500
CHANGE_SHARE = 0.25


@dataclass(frozen=True)
class FleetCount:
    """What the node's OCPP server holds now."""

    connected: int
    departed: int  # connections closed since the process started
    settling: bool  # boots still have their after-boot work queued or running


@dataclass(frozen=True)
class FreezeBaseline:
    """The fleet as it was at the last freeze."""

    connected: int = 0
    departed: int = 0


FreezeStep = Literal["freeze", "refreeze"]


def freeze_due(
    baseline: FreezeBaseline,
    now: FleetCount,
    *,
    min_change: int = MIN_CHANGE,
    share: float = CHANGE_SHARE,
) -> FreezeStep | None:
    """What the collector should do for this fleet count, if anything.

    `refreeze` (unfreeze, collect, freeze) once the stations that left since the last freeze
    may have left cycles among the frozen objects; `freeze` once enough stations came. Neither
    while boots settle: their after-boot work is still making objects.
    """
    if now.settling:
        return None
    enough = max(min_change, int(baseline.connected * share))
    if now.departed - baseline.departed >= enough:
        return "refreeze"
    if now.connected - baseline.connected >= enough:
        return "freeze"
    return None


@dataclass(frozen=True)
class FreezeReport:
    step: FreezeStep
    stations: int
    collected: int  # unreachable objects found (the youngest generation's, for a freeze)
    pause_s: float


class CollectorFreezer:
    """Freezes the collector's old objects after a fleet settled (`run` checks periodically)."""

    def __init__(
        self,
        count: Callable[[], FleetCount],
        *,
        interval_s: float = 10.0,
        min_change: int = MIN_CHANGE,
        share: float = CHANGE_SHARE,
    ) -> None:
        self._count = count
        self._interval_s = interval_s
        self._min_change = min_change
        self._share = share
        self.baseline = FreezeBaseline()

    def step(self) -> FreezeReport | None:
        """Freeze if due now; what was done."""
        now = self._count()
        due = freeze_due(self.baseline, now, min_change=self._min_change, share=self._share)
        if due is None:
            return None
        started = time.perf_counter()
        if due == "refreeze":
            gc.unfreeze()
            collected = gc.collect()
        else:
            collected = gc.collect(0)
        gc.freeze()
        self.baseline = FreezeBaseline(connected=now.connected, departed=now.departed)
        # Not gc.get_freeze_count(): it walks the frozen list (150 ms at 10,000 stations).
        return FreezeReport(step=due, stations=now.connected, collected=collected,
                            pause_s=time.perf_counter() - started)

    async def run(self, reported: Callable[[FreezeReport], None] | None = None) -> None:
        """Check every `interval_s`; each freeze is logged (and handed to `reported`)."""
        while True:
            await asyncio.sleep(self._interval_s)
            report = self.step()
            if report is None:
                continue
            log.info("collector.frozen", step=report.step, stations=report.stations,
                     collected=report.collected,
                     pause_ms=round(report.pause_s * 1000))
            if reported is not None:
                reported(report)


@contextlib.asynccontextmanager
async def tuned_collector(
    count: Callable[[], FleetCount], reported: Callable[[FreezeReport], None] | None = None
) -> AsyncIterator[None]:
    """For a started node: `tune_collector`, then a `CollectorFreezer` on `count` while inside."""
    tune_collector()
    freezer = asyncio.create_task(CollectorFreezer(count).run(reported), name="collector-freezer")
    try:
        yield
    finally:
        freezer.cancel()
