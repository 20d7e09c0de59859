"""The configured database for one CLI command: migrated, one transaction, disposed after."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from csms.serve import open_database
from csms.settings import Settings

T = TypeVar("T")


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on `VOLTHAUS_DATABASE_URL`; committed if it returns."""

    async def go() -> T:
        engine = await open_database(Settings())
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())
