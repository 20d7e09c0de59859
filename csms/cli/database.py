"""The configured database for one CLI command: migrated, one transaction, disposed after."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from csms.serve import open_database
from csms.settings import Settings

T = TypeVar("T")


async def open_cli_database() -> AsyncEngine:
    """The configured database, migrated; its location is said first (on stderr), so nobody
    wonders which file a command changed."""
    settings = Settings()
    print(f"volthaus: database {settings.database_shown}", file=sys.stderr, flush=True)
    return await open_database(settings)


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on `VOLTHAUS_DATABASE_URL`; committed if it returns."""

    async def go() -> T:
        engine = await open_cli_database()
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())
