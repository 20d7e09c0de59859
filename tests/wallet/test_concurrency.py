"""Concurrency and replay: many tasks on one wallet lose no update, never take the wallet below
its allowed credit, and leave the ledger balanced. 50 tasks x 200 holds and settlements on
PostgreSQL; the SQLite path (serialised writes) with a smaller load."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from tests.wallet.conftest import seed_site
from wallet.errors import CreditRefused
from wallet.ledger import ledger_balance, trial_balance
from wallet.models import HoldRecord
from wallet.service import (
    open_hold,
    set_policy,
    settle_hold,
    top_up_cash,
    wallet_view,
)

AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
# About 1.31 spent per round on average: the money runs out near the end, so both the
# settlements and the refusals at the edge of the credit are exercised under contention.
START = Decimal("12000.00")
TASKS = 50
ROUNDS = 200


async def hammer(engine: AsyncEngine, tasks: int, rounds: int, start: Decimal) -> None:
    factory: async_sessionmaker[AsyncSession] = session_factory(engine)
    await seed_site(factory, max_top_up=start)  # one large top-up feeds the whole hammering
    async with factory() as session:
        await set_policy(session, "a-01", {"start_minimum": "0.50", "emergency_credit": "0"}, at=AT)
        await top_up_cash(session, account_id="a-01", amount=start, receipt="R-1", staff="desk",
                          at=AT)
        await session.commit()
    lowest: list[Decimal] = []
    refused = 0
    spent = Decimal(0)

    async def worker(number: int) -> None:
        nonlocal refused, spent
        rng = random.Random(number)
        async with factory() as session:
            for round_ in range(rounds):
                key = f"t{number}:r{round_}"
                amount = Decimal(rng.randint(50, 300)) / 100
                try:
                    hold = await open_hold(session, account_id="a-01", amount=amount,
                                           key=f"{key}:start", service="charging", at=AT)
                    await session.commit()
                except CreditRefused:
                    await session.rollback()
                    refused += 1
                    continue
                gross = (amount * rng.choice([Decimal("0.5"), Decimal("1")])).quantize(
                    Decimal("0.01"))
                net = (gross / Decimal("1.19")).quantize(Decimal("0.0001"))
                result = await settle_hold(session, hold.id, net=net, vat=gross - net,
                                           gross=gross, service="charging", key=f"{key}:stop",
                                           at=AT)
                if round_ % 10 == 0:
                    # Replaying the settlement inside the same transaction moves nothing.
                    again = await settle_hold(session, hold.id, net=net, vat=gross - net,
                                              gross=gross, service="charging",
                                              key=f"{key}:stop", at=AT)
                    assert again.entry is not None and again.entry.replayed
                view = await wallet_view(session, "a-01", AT)
                lowest.append(view.available)
                await session.commit()
                assert result.entry is not None
                spent += gross

    await asyncio.gather(*(worker(n) for n in range(tasks)))
    async with factory() as session:
        view = await wallet_view(session, "a-01", AT)
        # No lost update: the cached balance, the ledger and the sum of the bills agree.
        assert view.balance == start - spent
        assert await ledger_balance(session, "wallet:a-01") == view.balance
        assert await trial_balance(session) == 0
        assert view.holds == 0
        # Never below the allowed credit (none here).
        assert min(lowest) >= 0 and view.balance >= 0
        settled = (await session.exec(
            select(func.count()).select_from(HoldRecord).where(HoldRecord.status == "settled")
        )).one()
        assert settled + refused == tasks * rounds
        # The money ran out part way: refusals happened, and they were correct.
        assert refused > 0


@pytest.mark.timeout(600)
async def test_concurrent_holds_and_settlements_postgres(postgres_engine: AsyncEngine) -> None:
    # The 50 tasks share 20 connections (the server is shared with other test runs); a task
    # waits for a connection as long as it takes instead of the pool's default 30 s, because
    # all of them queue on the one wallet's row lock anyway.
    wide = create_async_engine(postgres_engine.url, pool_size=20, max_overflow=0, pool_timeout=600)
    try:
        started = time.perf_counter()
        await hammer(wide, tasks=TASKS, rounds=ROUNDS, start=START)
        elapsed = time.perf_counter() - started
        print(f"\n{TASKS} x {ROUNDS} holds+settlements on PostgreSQL: {elapsed:.1f} s")
    finally:
        await wide.dispose()


async def test_concurrent_holds_and_settlements_sqlite_serialised(
    sqlite_engine: AsyncEngine,
) -> None:
    await hammer(sqlite_engine, tasks=10, rounds=20, start=Decimal("200.00"))
