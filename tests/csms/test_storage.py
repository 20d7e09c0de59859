"""Storage: plain URLs, migrations and the column types, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import async_url, create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.inventory.models import Site
from wallet.models import Account


def test_plain_urls_get_async_drivers() -> None:
    assert async_url("sqlite:///var/volthaus.db") == "sqlite+aiosqlite:///var/volthaus.db"
    assert (
        async_url("postgresql://postgres@127.0.0.1:5432/test")
        == "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        async_url("mysql://root@localhost/test")


async def test_migrations_create_every_table_and_are_repeatable(engine: AsyncEngine) -> None:
    await upgrade_database(engine)  # a second run is a no-op
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"site", "building", "tariff", "station", "account", "badge", "amenity", "meter",
            "api_token", "alembic_version"} <= names


async def test_money_and_time_round_trip_exactly(engine: AsyncEngine) -> None:
    factory = session_factory(engine)
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=1)))
    async with factory() as session:
        session.add(Site(id="s", name="S", timezone="Europe/Berlin", currency="EUR", country="DE"))
        session.add(Account(id="a", site_id="s", ref="a", name="A",
                            opening_balance=Decimal("12.3456")))
        await session.commit()
    async with factory() as session:
        account = await session.get(Account, "a")
        assert account is not None
        assert account.opening_balance == Decimal("12.3456")
        total = (await session.execute(text("SELECT SUM(opening_balance) FROM account"))).scalar()
        assert total == 123456
    from column_types import UTCDateTime

    column = UTCDateTime()
    stored = column.process_bind_param(at, engine.dialect)
    assert stored is not None
    back = column.process_result_value(stored, engine.dialect)
    assert back == at and back.tzinfo == UTC


def test_money_refuses_float_and_excess_digits() -> None:
    from column_types import Money

    engine = create_engine("sqlite:///:memory:")
    with pytest.raises(TypeError):
        Money().process_bind_param(1.5, engine.dialect)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 4 decimals"):
        Money().process_bind_param(Decimal("0.00001"), engine.dialect)
