"""A site with two households for the rfid tests that need a database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from csms.inventory.models import Site
from wallet.models import Account

NOW = datetime(2026, 3, 14, 18, 30, tzinfo=UTC)


async def add_site(session: AsyncSession, site_id: str, *accounts: str) -> None:
    session.add(Site(id=site_id, name=site_id.title(), timezone="Europe/Berlin",
                     currency="EUR", country="DE"))
    await session.flush()
    for account_id in accounts:
        session.add(Account(id=account_id, site_id=site_id, ref=account_id,
                            name=f"Household {account_id}",
                            language="en" if account_id.endswith("en") else "de"))
    await session.flush()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session on a database holding site `lindenhof` (accounts a-01, a-02-en) and site
    `seeblick` (account s-01), on SQLite and PostgreSQL."""
    factory = session_factory(engine)
    async with factory() as session:
        await add_site(session, "lindenhof", "a-01", "a-02-en")
        await add_site(session, "seeblick", "s-01")
        await session.commit()
        yield session
