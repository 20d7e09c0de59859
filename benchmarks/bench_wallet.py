"""Wallet speed: settled holds per second (open a hold, commit; settle it, commit) on SQLite and
on PostgreSQL, with one task and with many tasks on one wallet (all queueing on its row lock) and
on many wallets.

PostgreSQL runs when VOLTHAUS_BENCH_DATABASE_URL (or VOLTHAUS_TEST_DATABASE_URL) names a server;
the benchmark creates and drops a database of its own there. VOLTHAUS_BENCH_WALLET_HOLDS sets the
holds per figure (default 2000).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.db.scratch import scratch_database
from csms.inventory.models import Site
from wallet.models import Account
from wallet.service import open_hold, settle_hold, top_up_cash

HOLDS = int(os.environ.get("VOLTHAUS_BENCH_WALLET_HOLDS", "2000"))
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
WALLETS = 50


async def _prepare(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        # One top-up of 1,000,000 per account feeds the whole run: the site allows it.
        session.add(Site(id="bench", name="Bench", timezone="Europe/Berlin", currency="EUR",
                         country="DE", max_top_up=Decimal("1000000")))
        await session.flush()
        for number in range(WALLETS):
            session.add(Account(id=f"acc-{number}", site_id="bench", ref=f"acc-{number}",
                                name=f"Household {number}"))
        await session.flush()
        for number in range(WALLETS):
            await top_up_cash(session, account_id=f"acc-{number}", amount=Decimal("1000000"),
                              receipt=f"R-{number}", staff="bench", at=AT)
        await session.commit()


async def _settled_per_second(
    factory: async_sessionmaker[AsyncSession], tasks: int, wallets: int, label: str
) -> float:
    per_task = HOLDS // tasks

    async def worker(number: int) -> None:
        account = f"acc-{number % wallets}"
        async with factory() as session:
            for round_ in range(per_task):
                key = f"{label}:{number}:{round_}"
                hold = await open_hold(session, account_id=account, amount=Decimal("5.00"),
                                       key=f"{key}:start", service="charging", at=AT)
                await session.commit()
                await settle_hold(session, hold.id, net=Decimal("3.3613"),
                                  vat=Decimal("0.6387"), gross=Decimal("4.00"),
                                  service="charging", key=f"{key}:stop", at=AT)
                await session.commit()

    began = time.perf_counter()
    await asyncio.gather(*(worker(number) for number in range(tasks)))
    return per_task * tasks / (time.perf_counter() - began)


async def _run(engine: AsyncEngine, name: str) -> None:
    await upgrade_database(engine)
    factory = session_factory(engine)
    await _prepare(factory)
    for tasks, wallets, label in ((1, 1, "1 task"), (20, 1, "20 tasks, one wallet"),
                                  (20, 20, "20 tasks, 20 wallets")):
        rate = await _settled_per_second(factory, tasks, wallets, label)
        print(f"{name:<11} {label:<22} {rate:8.0f} settled holds/s", flush=True)


async def _sqlite() -> None:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{Path(directory) / 'bench.db'}")
        try:
            await _run(engine, "SQLite")
        finally:
            await engine.dispose()


async def _postgres(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await _run(engine, "PostgreSQL")
    finally:
        await engine.dispose()


def main() -> None:
    print(f"holds per figure: {HOLDS} (each: open + commit, settle + commit)")
    asyncio.run(_sqlite())
    server = os.environ.get("VOLTHAUS_BENCH_DATABASE_URL") or os.environ.get(
        "VOLTHAUS_TEST_DATABASE_URL")
    if server:
        with scratch_database(server, "volthaus_bench_wallet") as database_url:
            asyncio.run(_postgres(database_url))
    else:
        print("PostgreSQL: skipped (set VOLTHAUS_BENCH_DATABASE_URL)")


if __name__ == "__main__":
    main()
