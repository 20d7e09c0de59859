"""Work one node at a time does for the whole installation: switching laundry relays, polling
meters, supply control (and whatever else must not run twice). The node that holds the bus's
lease runs these loops; the others stand by and take over within a lease time when the holder
dies (on Redis the lease is a key with an expiry, not a home-made consensus).

A node that loses the lease (a long pause, Redis unreachable) stops its loops at its next
renewal; for the moments both might still run, every money movement is idempotent and every
device command states the wanted end state, so a double step moves nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from csms.bus.errors import BusError
from csms.bus.interface import Bus

log = structlog.get_logger("csms.duty")

DEFAULT_LEASE_S = 15.0
# Stopping a loop: how often and how far apart a cancel is repeated before giving up on it.
STOP_ATTEMPTS = 50
STOP_RETRY_S = 0.2
Loop = Callable[[], Coroutine[Any, Any, Any]]


class Duties:
    def __init__(
        self, bus: Bus, loops: Mapping[str, Loop], *, name: str = "devices",
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self._bus = bus
        self._loops = dict(loops)
        self.name = name
        self.lease_s = lease_s
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self.taken = asyncio.Event()  # set while this node runs the loops
        self._released = False

    @property
    def holding(self) -> bool:
        return bool(self._tasks)

    async def run(self) -> None:
        try:
            while not self._released:
                try:
                    held = await self._bus.hold_duty(self.name, self.lease_s)
                except (BusError, OSError, ConnectionError):
                    log.warning("duty.renew_failed", duty=self.name, exc_info=True)
                    held = False
                if self._released:
                    break  # released while asking: do not take it back
                if held:
                    self._start_missing()
                elif self._tasks:
                    log.warning("duty.lost", duty=self.name, node=self._bus.node_id)
                    await self._stop_loops()
                await asyncio.sleep(self.lease_s / 3)
        finally:
            await self._stop_loops()

    def _start_missing(self) -> None:
        if not self._tasks:
            log.info("duty.taken", duty=self.name, node=self._bus.node_id)
        for loop_name, loop in self._loops.items():
            task = self._tasks.get(loop_name)
            if task is not None and task.done():
                if not task.cancelled() and task.exception() is not None:
                    log.error("duty.loop_failed", duty=self.name, loop=loop_name,
                              exc_info=task.exception())
                task = None
            if task is None:
                self._tasks[loop_name] = asyncio.create_task(loop(), name=loop_name)
        self.taken.set()

    async def _stop_loops(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        self.taken.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            # A cancel can be swallowed deep inside a loop (Python 3.11's wait_for when its
            # inner future completes in the same step, a device library): asked again until
            # the loop ends, so a node's stop never hangs on one of them.
            for _attempt in range(STOP_ATTEMPTS):
                done, _ = await asyncio.wait({task}, timeout=STOP_RETRY_S)
                if done:
                    break
                task.cancel()
            else:
                log.error("duty.loop_would_not_stop", duty=self.name, loop=task.get_name())
                continue
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()

    async def release(self) -> None:
        """A clean stop: loops ended, the lease given up so another node takes over at once;
        this node does not take it again."""
        self._released = True
        await self._stop_loops()
        with contextlib.suppress(BusError, OSError, ConnectionError):
            await self._bus.release_duty(self.name)
