"""Every row of every table, to show that something changed nothing in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncEngine


async def dump_tables(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows as tuples, sorted (by their text), keyed by table name."""
    metadata = MetaData()
    async with engine.connect() as connection:
        await connection.run_sync(metadata.reflect)
        dump = {}
        for name, table in sorted(metadata.tables.items()):
            rows = (await connection.execute(select(table))).all()
            dump[name] = sorted((tuple(row) for row in rows), key=repr)
    return dump
