"""The work the server sends on its own after an accepted boot, queued so a storm cannot swamp it.

After a restart thousands of stations boot within seconds; each accepted boot means a
configuration read, a clock setting and a local list for the station. Started at once, that
work fought the boots themselves for the event loop and the database (a fresh node could not
get 2,000 stations accepted). Here it waits in one queue:

* at most `concurrency` stations' work runs at a time;
* it yields to station messages: a job starts only when no station message is being handled
  (`StationActivity`), or when it has waited `max_defer_s` (so a busy fleet still gets its lists);
* one entry per station: a boot retry while the station's work is queued or running on the same
  connection adds nothing (a station re-booting on a new connection gets it once more).

A site's list updates after a badge change go through a queue of their own of the same kind
(csms.ocpp.local_lists): started at once for every station of a 10,000-station site, they too
would swamp the node. There a change while a station's update runs queues it once more, since
the running one may have read the list before the change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog

from csms.ocpp.connection import StationDisconnected

log = structlog.get_logger("csms.ocpp.after_boot")


class _Conn(Protocol):
    station_id: str

    @property
    def closed(self) -> bool: ...


class StationActivity:
    """How many station messages are being handled right now on this node."""

    def __init__(self) -> None:
        self.busy = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def begin(self) -> None:
        self.busy += 1
        self._quiet.clear()

    def end(self) -> None:
        self.busy -= 1
        if self.busy <= 0:
            self.busy = 0
            self._quiet.set()

    async def quiet(self, max_wait_s: float) -> None:
        """Return when no station message is in hand (or after `max_wait_s`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait_s):
                while self.busy:
                    await self._quiet.wait()
                    # Let the messages that became ready meanwhile go first as well.
                    await asyncio.sleep(0)


Job = Callable[[Any], Coroutine[Any, Any, None]]


class AfterBootQueue:
    """Runs `job(conn)` for booted stations, `concurrency` at a time, after station messages."""

    def __init__(
        self,
        job: Job,
        activity: StationActivity,
        *,
        concurrency: int = 8,
        max_defer_s: float = 2.0,
        again_if_running: bool = False,
    ) -> None:
        self._job = job
        self._again_if_running = again_if_running
        # Stations submitted while their job ran (again_if_running): queued once it ends.
        self._again: set[str] = set()
        self._activity = activity
        self._concurrency = concurrency
        self._max_defer_s = max_defer_s
        self._queued: OrderedDict[str, Any] = OrderedDict()
        self._running: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.started = 0

    def submit(self, conn: _Conn) -> None:
        """Queue the station's after-boot work unless it is queued or running already."""
        station_id = conn.station_id
        running = self._running.get(station_id)
        if running is conn and not conn.closed:
            if self._again_if_running:
                self._again.add(station_id)
            return
        # Queued already: keep its place, with the newest connection.
        self._queued[station_id] = conn
        self._idle.clear()
        self._wake.set()
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"after-boot-{n}")
                for n in range(self._concurrency)
            ]

    @property
    def pending(self) -> int:
        return len(self._queued) + len(self._running)

    @property
    def running(self) -> int:
        return len(self._running)

    async def _work(self) -> None:
        while True:
            if not self._queued:
                if not self._running:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._activity.quiet(self._max_defer_s)
            if not self._queued:
                continue
            station_id, conn = self._queued.popitem(last=False)
            if conn.closed:
                continue
            self._running[station_id] = conn
            self.started += 1
            try:
                await self._job(conn)
            except StationDisconnected:
                log.info("ocpp.after_boot_interrupted", station_id=station_id)
            except Exception:
                log.exception("ocpp.after_boot_failed", station_id=station_id)
            finally:
                self._finished(station_id, conn)

    def _finished(self, station_id: str, conn: _Conn) -> None:
        if self._running.get(station_id) is not conn:
            return  # a newer connection of the station runs its own
        del self._running[station_id]
        if station_id in self._again:
            self._again.discard(station_id)
            if not conn.closed and station_id not in self._queued:
                self._queued[station_id] = conn

    async def drained(self) -> None:
        """Wait until nothing is queued or running (tests, benchmarks)."""
        await self._idle.wait()

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers = []
