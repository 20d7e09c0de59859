"""aiosqlite connections whose statements run in the event loop's own thread.

aiosqlite hands every call to a worker thread and waits for the answer: about 220 µs per call
on a 2-core machine, and SQLAlchemy makes three calls per statement (cursor, execute, fetch), so
a statement SQLite answers in a few microseconds cost about 640 µs (measured; see the OCPP
benchmark). For an embedded database that is nearly all overhead, and it capped how many station
messages a node could store per second.

Here the calls run inline. What can then hold up the loop is SQLite's own work: a commit's fsync
(group commit keeps commits few) and waiting for another process's write lock. That wait is not
left to SQLite's sleeping busy handler (it would freeze the loop): the connection's busy timeout
is 0 and a busy answer is retried with `asyncio.sleep`, so stations keep being served meanwhile.
Only opening and closing (and SQLAlchemy's isolation-level switch) still go through aiosqlite's
thread; the sqlite3 connection is therefore opened with `check_same_thread=False`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

# How long a statement waits for another connection's write lock before it fails.
LOCK_TIMEOUT_S = 30.0


class InlineSqliteConnection(aiosqlite.Connection):
    """`aiosqlite.Connection` with `_execute` (every cursor and connection call) run inline."""

    def __init__(
        self, connector: Callable[[], sqlite3.Connection], *, lock_timeout_s: float
    ) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._lock_timeout_s = lock_timeout_s

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        deadline: float | None = None
        pause = 0.001
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                if not is_busy(error):
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self._lock_timeout_s
                if now >= deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)


def is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLite answered SQLITE_BUSY (another connection holds the lock): worth a retry."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(error)


def inline_connector(
    database: str, *, lock_timeout_s: float = LOCK_TIMEOUT_S
) -> Callable[[], Any]:
    """An `async_creator` for SQLAlchemy's aiosqlite dialect, opening `database`."""

    async def create() -> InlineSqliteConnection:
        connector = partial(
            sqlite3.connect, database, timeout=0, check_same_thread=False, uri=False
        )
        connection = InlineSqliteConnection(connector, lock_timeout_s=lock_timeout_s)
        await connection  # opens it on aiosqlite's thread
        return connection

    return create
