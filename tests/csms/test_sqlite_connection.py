"""SQLite statements run in the loop's thread, and waiting for a lock never freezes the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from csms.db.sqlite_connection import inline_connector


async def _ticks_while(awaitable: object) -> tuple[int, object]:
    """How often the loop ran another task while `awaitable` was waited for."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable  # type: ignore[misc]
    finally:
        done.set()
        await task
    return ticks, result


async def test_waiting_for_another_process_lock_keeps_the_loop_running(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.db")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    connection = await inline_connector(path)()
    try:
        await connection.execute("PRAGMA busy_timeout=0")
        asyncio.get_running_loop().call_later(0.4, other.commit)
        started = time.monotonic()
        ticks, _ = await _ticks_while(connection.execute("BEGIN IMMEDIATE"))
        waited = time.monotonic() - started
        await connection.execute("INSERT INTO t VALUES (2)")
        await connection.commit()
        # It waited for the other writer, and the loop served others meanwhile.
        assert waited >= 0.35
        assert ticks >= 10
        cursor = await connection.execute("SELECT x FROM t ORDER BY x")
        assert [row[0] for row in await cursor.fetchall()] == [1, 2]
    finally:
        await connection.close()
        other.close()


async def test_a_lock_held_too_long_fails_with_sqlites_error(tmp_path: Path) -> None:
    path = str(tmp_path / "held.db")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    connection = await inline_connector(path, lock_timeout_s=0.3)()
    try:
        await connection.execute("PRAGMA busy_timeout=0")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await connection.execute("BEGIN IMMEDIATE")
    finally:
        other.rollback()
        await connection.close()
        other.close()
