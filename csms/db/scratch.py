"""Throwaway PostgreSQL databases for the test suite and the benchmarks.

`scratch_database(server_url, prefix)` creates a database of its own on the server (so parallel
runs never meet), yields its URL and drops it afterwards, also when the block failed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


async def admin_execute(url: str, statement: str) -> None:
    """One statement outside any transaction (CREATE/DROP DATABASE need that)."""
    import asyncpg  # only needed where PostgreSQL is used

    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, database=parsed.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database `<prefix>_<random>` on `server_url`'s server, dropped after the block.
    Not for use inside a running event loop (it runs its own)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
