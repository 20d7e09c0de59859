"""Group commit: the small database work of many stations shares one transaction.

Thousands of stations each sending a status or booting would otherwise cost one transaction
each, and on SQLite every write transaction is serialised (BEGIN IMMEDIATE) and ends in an
fsync of the WAL: the node then holds only as many stations as it has commits per second.
Here each caller queues an operation (a function of a session that does not commit) and waits;
one worker runs everything queued so far in one transaction and commits once. A caller is
answered only after that commit, so what a station is told rests on durable storage exactly as
before (synchronous stays FULL), and a station's own messages stay in order because it waits.

A failing operation must not take the others down: if the shared transaction fails, every
operation of that batch is run again in a transaction of its own, and only the failing one
sees its error. Operations must therefore be safe to run twice in the sense that the first
run was rolled back (they are: nothing of the failed batch was committed) and must not have
effects outside the database (no sends, no publishes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")
Operation = Callable[[AsyncSession], Awaitable[Any]]
SessionSlot = Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]]

log = structlog.get_logger("csms.ocpp.group_commit")


class GroupCommit:
    """Queue operations with `await run(op)`; workers commit them in shared transactions."""

    def __init__(self, session: SessionSlot, *, max_batch: int = 256, workers: int = 1) -> None:
        self._session = session
        self._max_batch = max_batch
        self._workers = max(workers, 1)
        self._queue: list[tuple[Operation, asyncio.Future[Any]]] = []
        self._running = 0
        # Strong references: the loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.operations = 0

    async def run(self, op: Callable[[AsyncSession], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._running < self._workers:
            # Counted here and uncounted in _drain with no await between its last look at the
            # queue and the uncount, so an operation is never queued with no worker to take it.
            self._running += 1
            task = asyncio.create_task(self._drain(), name="ocpp-group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._running -= 1

    async def _drain_queue(self) -> None:
        # Never cancelled by anyone: a cancel inside a transaction would leave SQLite locked.
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            # A caller that gave up before its turn came does not get its write.
            batch = [(op, future) for op, future in batch if not future.done()]
            if not batch:
                continue
            try:
                results = await self._together(batch)
            except Exception:
                log.info("ocpp.group_commit_split", size=len(batch), exc_info=True)
                await self._alone(batch)
                continue
            self.batches += 1
            self.operations += len(batch)
            for (_op, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _together(self, batch: list[tuple[Operation, asyncio.Future[Any]]]) -> list[Any]:
        async with self._session() as session:
            results = [await op(session) for op, _future in batch]
            await session.commit()
        return results

    async def _alone(self, batch: list[tuple[Operation, asyncio.Future[Any]]]) -> None:
        for op, future in batch:
            try:
                async with self._session() as session:
                    result = await op(session)
                    await session.commit()
            except Exception as error:
                if not future.done():
                    future.set_exception(error)
            else:
                if not future.done():
                    future.set_result(result)

