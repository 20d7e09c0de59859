"""The wallet functions themselves keep the money rule: a voucher of 0.001 or a top-up above the
site's maximum cannot be made through any path (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Site
from wallet.amounts import AmountInvalid
from wallet.models import JournalEntry, VoucherBatch
from wallet.service import top_up_cash, wallet_view
from wallet.vouchers import create_batch

AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)


async def test_vouchers_and_cash_keep_the_rule_with_every_problem(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    async with factory() as session:
        with pytest.raises(AmountInvalid) as refused:
            await create_batch(session, site_id="lindenhof", value=Decimal("0.001"), count=0,
                               expires_at=AT - timedelta(days=1), key="b", at=AT)
        assert refused.value.errors == [
            ("value", "0.001 has more decimals than the minor unit of EUR (0.01)"),
            ("count", "must be a whole number from 1 to 10000"),
            ("expires_at", "must be in the future"),
        ]
        with pytest.raises(AmountInvalid) as refused:
            await top_up_cash(session, account_id="a-01", amount="500.01", receipt="R",
                              staff="anna", at=AT)
        assert refused.value.errors == [
            ("amount", "500.01 is above this site's maximum of 500.00 EUR per top-up")]
        await session.rollback()
    async with factory() as session:
        assert (await session.exec(select(func.count()).select_from(VoucherBatch))).one() == 0
        assert (await session.exec(select(func.count()).select_from(JournalEntry))).one() == 0


async def test_the_sites_own_maximum_applies(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        await session.exec(update(Site).values(max_top_up=Decimal("1000.00"),
                                               max_voucher=Decimal("20.00")))
        await session.commit()
    async with factory() as session:
        done = await top_up_cash(session, account_id="a-01", amount="999.99", receipt="R",
                                 staff="anna", at=AT)
        assert done.balance == Decimal("999.99")
        with pytest.raises(AmountInvalid, match=r"maximum of 20\.00 EUR per voucher"):
            await create_batch(session, site_id="lindenhof", value="25.00", count=1,
                               expires_at=AT + timedelta(days=1), key="b", at=AT)
        batch = await create_batch(session, site_id="lindenhof", value="20.00", count=1,
                                   expires_at=AT + timedelta(days=1), key="b", at=AT)
        assert batch.value == Decimal("20.00")
        await session.commit()
        assert (await wallet_view(session, "a-01", AT)).balance == Decimal("999.99")
