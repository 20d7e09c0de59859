"""The async engine for a plain database URL, with the driver chosen here, not by the user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.sqlite_connection import inline_connector


def async_url(url: str) -> str:
    """`sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`; `postgresql://…` -> `postgresql+asyncpg://…`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"database_url: unsupported database {backend!r} (use sqlite or postgresql)")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


async def refresh_statistics(engine: AsyncEngine) -> None:
    """After a bulk write (a site import), PostgreSQL's planner statistics for the new rows.

    Until autovacuum gets to them (never where it is off) the planner thinks a freshly filled
    table nearly empty: a batch's badge lookup then read every badge of the site for each of
    its prefix ranges (5-10 ms a batch at 2,000 badges, measured) instead of one index range
    each (0.1 ms). SQLite plans from its indexes and is left alone."""
    if is_sqlite(engine):
        return
    async with engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; SQLite gets WAL mode, foreign keys and a busy timeout."""
    full = async_url(url)
    parsed = make_url(full)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One writer at a time: SQLite serialises writes, and a connection that finds the write
        # lock taken waits for it without blocking the loop (see sqlite_connection).
        engine = create_async_engine(
            full, async_creator=inline_connector(parsed.database or ":memory:")
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(full, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the driver, decides when a transaction begins (_sqlite_begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Busy answers come back at once and are retried asynchronously (sqlite_connection).
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock at the start, so two read-then-write transactions never
    # deadlock on upgrade; this is how writes are serialised on the embedded database.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
