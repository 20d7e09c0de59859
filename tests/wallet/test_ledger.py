"""The ledger: balanced, append-only, idempotent entries; opening balances applied once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from tests.wallet.conftest import seed_site
from wallet.errors import IdempotencyConflict, InvalidInput, UnbalancedEntry
from wallet.ledger import (
    LedgerKind,
    ledger_balance,
    lock_wallet,
    post,
    site_account,
    trial_balance,
    wallet_account,
)
from wallet.service import record_opening_balance

Factory = async_sessionmaker[AsyncSession]
WALLET = wallet_account("lindenhof", "a-01")
CASH = site_account("lindenhof", LedgerKind.CASH)
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)


async def test_opening_balance_is_applied_once(factory: Factory) -> None:
    async with factory() as session:
        await record_opening_balance(session, "a-01", Decimal("20.00"), at=AT)
        await session.commit()
    async with factory() as session:
        await record_opening_balance(session, "a-01", Decimal("20.00"), at=AT)
        await record_opening_balance(session, "a-01", Decimal("35.00"), at=AT)
        await session.commit()
    async with factory() as session:
        assert await ledger_balance(session, WALLET.id) == Decimal("20.00")
        assert (await lock_wallet(session, "a-01")).balance == Decimal("20.00")
        assert await trial_balance(session) == 0


async def test_opening_balance_does_not_commit(factory: Factory) -> None:
    async with factory() as session:
        await record_opening_balance(session, "a-01", Decimal("20.00"), at=AT)
        await session.rollback()
    async with factory() as session:
        assert await ledger_balance(session, WALLET.id) == 0
        await record_opening_balance(session, "a-01", Decimal("7.50"), at=AT)
        await session.commit()
    async with factory() as session:
        assert await ledger_balance(session, WALLET.id) == Decimal("7.50")


async def test_bad_opening_amount_names_the_field(factory: Factory) -> None:
    async with factory() as session:
        with pytest.raises(InvalidInput, match="opening_balance"):
            await record_opening_balance(session, "a-01", Decimal("1.00001"), at=AT)
        with pytest.raises(InvalidInput, match="opening_balance"):
            await record_opening_balance(session, "a-01", 1.5, at=AT)  # type: ignore[arg-type]


async def test_unbalanced_entries_are_refused_in_code(factory: Factory) -> None:
    async with factory() as session:
        await lock_wallet(session, "a-01")
        with pytest.raises(UnbalancedEntry, match=r"sum to 0\.01"):
            await post(session, key="k", site_id="lindenhof", currency="EUR", kind="test",
                       legs=[(WALLET, Decimal("10.00")), (CASH, Decimal("-9.99"))], at=AT)
        with pytest.raises(UnbalancedEntry, match="at least two"):
            await post(session, key="k", site_id="lindenhof", currency="EUR", kind="test",
                       legs=[(WALLET, Decimal("0")), (CASH, Decimal("0"))], at=AT)


async def test_same_key_posts_once_and_other_legs_conflict(factory: Factory) -> None:
    legs = [(WALLET, Decimal("10.00")), (CASH, Decimal("-10.00"))]
    async with factory() as session:
        await lock_wallet(session, "a-01")
        first = await post(session, key="cash:R-1", site_id="lindenhof", currency="EUR",
                           kind="topup", legs=legs, account_id="a-01", at=AT)
        again = await post(session, key="cash:R-1", site_id="lindenhof", currency="EUR",
                           kind="topup", legs=legs, account_id="a-01", at=AT)
        assert (first.replayed, again.replayed) == (False, True)
        assert again.id == first.id
        with pytest.raises(IdempotencyConflict):
            await post(session, key="cash:R-1", site_id="lindenhof", currency="EUR",
                       kind="topup", legs=[(WALLET, Decimal("11.00")), (CASH, Decimal("-11.00"))],
                       at=AT)
        assert (await lock_wallet(session, "a-01")).balance == Decimal("10.00")
        assert await ledger_balance(session, WALLET.id) == Decimal("10.00")
        await session.commit()


async def test_postings_are_immutable_in_the_database(factory: Factory) -> None:
    async with factory() as session:
        await record_opening_balance(session, "a-01", Decimal("20.00"), at=AT)
        await session.commit()
    for statement in ("UPDATE posting SET amount = 0", "DELETE FROM posting",
                      "UPDATE journal_entry SET kind = 'x'", "DELETE FROM journal_entry"):
        async with factory() as session:
            with pytest.raises((IntegrityError, DBAPIError), match="immutable"):
                await session.exec(text(statement))  # type: ignore[call-overload]
            await session.rollback()


async def test_postgres_refuses_an_unbalanced_entry_at_commit(
    postgres_engine: AsyncEngine,
) -> None:
    """The deferred constraint trigger (PostgreSQL) catches what bypasses `post()`."""
    factory = session_factory(postgres_engine)
    await seed_site(factory)
    async with factory() as session:
        await record_opening_balance(session, "a-01", Decimal("20.00"), at=AT)
        await session.commit()
    async with factory() as session:
        entry_id = (await session.exec(text("SELECT id FROM journal_entry"))).scalar_one()  # type: ignore[call-overload]
        await session.exec(text(  # type: ignore[call-overload]
            f"INSERT INTO posting (entry_id, ledger_account_id, amount) "
            f"VALUES ('{entry_id}', 'wallet:a-01', 10000)"
        ))
        with pytest.raises(DBAPIError, match="unbalanced"):
            await session.commit()
