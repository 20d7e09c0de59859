"""A site with two households on each backend, for the wallet's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.db.scratch import admin_execute
from csms.inventory.models import Site
from wallet.models import Account


async def seed_site(factory: async_sessionmaker[AsyncSession], *, timezone: str = "Europe/Berlin",
                    country: str = "DE", region: str | None = "BY",
                    max_top_up: Decimal = Decimal("500.00")) -> None:
    async with factory() as session:
        session.add(Site(id="lindenhof", name="Lindenhof", timezone=timezone, currency="EUR",
                         country=country, region=region, max_top_up=max_top_up))
        await session.flush()
        session.add(Account(id="a-01", site_id="lindenhof", ref="a-01", name="Keller",
                            language="de", email="keller@example.org"))
        session.add(Account(id="a-02", site_id="lindenhof", ref="a-02", name="Smith",
                            language="en", email="smith@example.org"))
        await session.commit()


@pytest.fixture
async def factory(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    made = session_factory(engine)
    await seed_site(made)
    yield made


@pytest.fixture
async def sqlite_factory(
    sqlite_engine: AsyncEngine,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    made = session_factory(sqlite_engine)
    await seed_site(made)
    yield made


@pytest.fixture
async def postgres_engine(postgres_run_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated PostgreSQL database only, for tests whose subject is PostgreSQL itself (they
    skip, like every postgres test, when VOLTHAUS_TEST_DATABASE_URL is unset)."""
    await admin_execute(postgres_run_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine = create_engine(postgres_run_url)
    await upgrade_database(engine)
    yield engine
    await engine.dispose()
