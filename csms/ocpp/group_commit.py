"""Group commit: the small database work of many stations shares one transaction.

Thousands of stations each sending a status or booting would otherwise cost one transaction
each, and on SQLite every write transaction is serialised (BEGIN IMMEDIATE) and ends in an
fsync of the WAL: the node then holds only as many stations as it has commits per second.
Here each caller queues an operation (a function of a session that does not commit) and waits;
a batch of what queued runs in one transaction that commits once. A caller is
answered only after that commit, so what a station is told rests on durable storage exactly as
before (synchronous stays FULL), and a station's own messages stay in order because it waits.

Rows to write need no function: `write(statement, row)` queues one row for a Core statement
(insert, update, upsert); the rows a batch collected for the same statement object are sent as
one executemany after the batch's operations ran. Most station messages are such rows (a status,
a last-seen time, a stored message), and one executemany of hundreds of rows costs about what
one row costs through the ORM. An operation adds rows that nothing in the batch reads back (the
readings of a MeterValues, a stop's stored message) the same way with `write_with_batch`: on
PostgreSQL every statement an operation runs is a round trip that the whole batch waits for.
For the same reason the reads most messages begin with (the badge shown, the transaction a
MeterValues names, whether the station holds a reservation) are made once per batch: an
operation names them as `BatchRead`s, the batch runs each kind's loader once with every key its
operations named before any operation runs, and the loader leaves its answers where the
operation's own read finds them (in the session). This relies on a station's messages being
handled one after the other (it waits for each answer): no operation of a batch changes what
another one's read answered, so reading ahead gives the answers reading in turn would have.

A batch that starts the moment its first operation arrives holds only that one when stations
send a few hundred messages per second: then the transaction, not the message, is what costs
(a session, BEGIN IMMEDIATE, the commit's fsync: about two thirds of a status message's CPU).
So a batch starts once its oldest operation has waited `window_s` (a few milliseconds, far
below what a station waits for an answer), and one commit serves every message of that window.
It starts at once when a full batch is queued, and what queued while the transactions were
busy has waited already: under a boot storm nothing pauses. When nobody joined a window (a quiet
site, one station talking alone) the following batches start at once, more of them after every
empty window, so a lone caller is not slowed down.

One dispatcher forms the batches; up to `workers` of them run at once, each in its own
transaction (SQLite runs them one after the other; PostgreSQL overlaps them). Several workers
each waiting out a window of their own would split the same few messages between them, which
is what the window is there to avoid.

A failing operation must not take the others down: if the shared transaction fails, every
operation of that batch is run again in a transaction of its own, and only the failing one
sees its error. Operations must therefore be safe to run twice in the sense that the first
run was rolled back (they are: nothing of the failed batch was committed) and must not have
effects outside the database (no sends, no publishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy.sql import Executable
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.ocpp.rows import execute

T = TypeVar("T")
# A batch's operations run back to back in the loop's thread (their reads were made ahead, and
# SQLite statements run inline): after this long they let the stations' frames through.
# Counted in time, not operations: on PostgreSQL an operation is mostly Python and a yield is
# a turn of a loop busy with thousands of stations, which every operation of the batch waits.
YIELD_AFTER_S = 0.005
KEYS_STEP = 32
MAX_SKIP = 64
Operation = Callable[[AsyncSession], Awaitable[Any]]
SessionSlot = Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]]


# Reads every key that a batch's operations named for it, in one go, before they run; leaves
# the answers in the session for the operations' own reads (which read alone without them).
Loader = Callable[[AsyncSession, list[Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchRead:
    """A read an operation makes that its batch makes once for all its operations."""

    load: Loader
    key: Hashable


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[Any]
    # The loop's time when it was queued: a batch starts once its oldest waited the window.
    queued_at: float
    op: Operation | None = None
    statement: Executable | None = None
    row: dict[str, Any] | None = None
    reads: Sequence[BatchRead] = ()

log = structlog.get_logger("csms.ocpp.group_commit")
# Where an operation's session keeps the rows written with its batch (`write_with_batch`).
_BATCH_ROWS = "volthaus.group_commit.rows"
BatchRows = dict[Executable, list[dict[str, Any]]]


async def write_with_batch(
    session: AsyncSession, statement: Executable, rows: list[dict[str, Any]]
) -> None:
    """Rows for a Core statement, written once the batch's operations ran, in one executemany
    with every other row of the batch for the same statement object (each row with the same
    keys). Only for rows nothing in the same transaction reads before its commit. A session
    that no batch runs writes them at once."""
    batch: BatchRows | None = session.info.get(_BATCH_ROWS)
    if batch is None:
        await execute(session, statement, rows)
    else:
        batch.setdefault(statement, []).extend(rows)


def write_first(session: AsyncSession, statement: Executable) -> None:
    """The batch writes the rows its operations give for `statement` before those of every
    statement they give rows for (rows that others refer to, such as a new transaction that
    its messages name). For a loader: it runs before any operation does."""
    batch: BatchRows | None = session.info.get(_BATCH_ROWS)
    if batch is not None:
        batch.setdefault(statement, [])


async def _write_batch_rows(session: AsyncSession, rows: BatchRows) -> None:
    # The operations' ORM changes go first; the rows follow, statement by statement in the
    # order each statement first appeared (or was named by `write_first`).
    await session.flush()
    for statement, params in rows.items():
        if params:
            await execute(session, statement, params)


async def _read_ahead(session: AsyncSession, batch: list[_Item]) -> None:
    """Each loader once, with the keys the batch's operations named for it (each key once, in
    the order first named), padded to a multiple of KEYS_STEP with repeats of the last."""
    keys: dict[Loader, dict[Hashable, None]] = {}
    for item in batch:
        for read in item.reads:
            keys.setdefault(read.load, {})[read.key] = None
    for load, named in keys.items():
        await load(session, padded(list(named), KEYS_STEP))


def padded(keys: list[T], step: int) -> list[T]:
    """`keys` with its last one repeated up to a multiple of `step`. A loader's `IN (...)` of
    them then has a few lengths, not one per batch size: on PostgreSQL each length is a
    statement of its own that asyncpg prepares (a round trip) and keeps in a cache of 100 per
    connection, which a hundred lengths of a few loaders would keep evicting."""
    return keys + keys[-1:] * (-len(keys) % step)


class GroupCommit:
    """Queue operations with `await run(op)`; shared transactions commit them."""

    def __init__(
        self, session: SessionSlot, *, max_batch: int = 256, workers: int = 1,
        window_s: float = 0.0,
    ) -> None:
        self._session = session
        self._max_batch = max_batch
        self._window_s = window_s
        # Batches that start at once before the next window, and how many after the next
        # window nobody joined (doubling, up to MAX_SKIP).
        self._skip = 0
        self._backoff = 1
        self.windows = 0
        # Transactions running at once.
        self._slots = asyncio.Semaphore(max(workers, 1))
        self._queue: list[_Item] = []
        self._dispatching = False
        # Strong references: the loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.operations = 0

    async def run(
        self, op: Callable[[AsyncSession], Awaitable[T]], reads: Sequence[BatchRead] = ()
    ) -> T:
        """Run `op` in the next shared transaction; its result once that committed. `reads`
        are made ahead, once for the whole batch (an operation run alone makes them itself)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(_Item(future, loop.time(), op=op, reads=reads))
        return await future

    async def write(self, statement: Executable, row: dict[str, Any]) -> None:
        """Execute `statement` with `row` in the next shared transaction; returns once committed.

        Every row given for the same statement object must have the same keys (executemany).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Item(future, loop.time(), statement=statement, row=row))
        await future

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        if not self._dispatching:
            # Set here and cleared in _dispatch with no await between its last look at the
            # queue and the clear, so an operation is never queued with no dispatcher.
            self._dispatching = True
            self._spawn(self._dispatch(), "ocpp-group-commit")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        try:
            while self._queue:
                await self._gather()
                # Waiting for a free transaction lets the batch grow meanwhile.
                await self._slots.acquire()
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                # A caller that gave up before its turn came does not get its write.
                batch = [item for item in batch if not item.future.done()]
                if not batch:
                    self._slots.release()
                    continue
                # Never cancelled by anyone: a cancel inside a transaction would leave SQLite
                # locked.
                self._spawn(self._commit(batch), "ocpp-group-commit-batch")
        finally:
            self._dispatching = False

    async def _gather(self) -> None:
        """Wait until the oldest queued operation has waited the window, unless there is no
        window, a full batch is queued, or recent windows found nobody to join."""
        if self._window_s <= 0 or len(self._queue) >= self._max_batch:
            return
        left = self._queue[0].queued_at + self._window_s - asyncio.get_running_loop().time()
        if left <= 0:
            return  # it waited for busy transactions already
        if self._skip > 0:
            self._skip -= 1
            return
        queued = len(self._queue)
        self.windows += 1
        await asyncio.sleep(left)
        if len(self._queue) > queued:
            self._backoff = 1
            return
        # Nobody joined: the wait only delayed this caller (a quiet site, one station talking
        # alone). Start at once for a growing number of batches before the next try.
        self._skip = self._backoff
        self._backoff = min(self._backoff * 2, MAX_SKIP)

    async def _commit(self, batch: list[_Item]) -> None:
        try:
            try:
                results = await self._together(batch)
            except Exception:
                log.info("ocpp.group_commit_split", size=len(batch), exc_info=True)
                await self._alone(batch)
                return
            self.batches += 1
            self.operations += len(batch)
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
        finally:
            self._slots.release()

    async def _together(self, batch: list[_Item]) -> list[Any]:
        async with self._session() as session:
            results: list[Any] = []
            rows: BatchRows = {}
            session.info[_BATCH_ROWS] = rows
            if len(batch) > 1:
                # One operation alone reads for itself: ahead would be the same reads plus,
                # for some, a write of its own after.
                await _read_ahead(session, batch)
            ran_since = time.perf_counter()
            for item in batch:
                if time.perf_counter() - ran_since >= YIELD_AFTER_S:
                    await asyncio.sleep(0)
                    ran_since = time.perf_counter()
                if item.op is not None:
                    results.append(await item.op(session))
                else:
                    assert item.statement is not None and item.row is not None
                    rows.setdefault(item.statement, []).append(item.row)
                    results.append(None)
            await _write_batch_rows(session, rows)
            await session.commit()
        return results

    async def _alone(self, batch: list[_Item]) -> None:
        for item in batch:
            try:
                async with self._session() as session:
                    result = None
                    rows: BatchRows = {}
                    session.info[_BATCH_ROWS] = rows
                    if item.op is not None:
                        result = await item.op(session)
                    else:
                        assert item.statement is not None and item.row is not None
                        rows[item.statement] = [item.row]
                    await _write_batch_rows(session, rows)
                    await session.commit()
            except Exception as error:
                if not item.future.done():
                    item.future.set_exception(error)
            else:
                if not item.future.done():
                    item.future.set_result(result)

