"""Wallet operations other packages call, each taking the caller's `AsyncSession` first.

Transactions: every function here flushes its writes and never commits; the caller owns the
transaction and commits (or rolls back) it. Locking: every function that moves a household's
money, or changes its holds, takes that wallet's row lock first (`wallet.ledger.lock_wallet`:
`SELECT ... FOR UPDATE` on PostgreSQL; SQLite transactions are serialised by BEGIN IMMEDIATE), so
concurrent calls on one wallet from many tasks or nodes queue up and lose nothing. Keep those
transactions short: the lock is held until the caller commits.

Idempotency: every money movement takes a `key` derived from its cause; calling again with the same
key returns the original result and moves nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.ledger import (
    LedgerKind,
    account_site,
    find_entry,
    lock_wallet,
    money,
    post,
    site_account,
    wallet_account,
)


def opening_key(account_id: str) -> str:
    return f"opening:{account_id}"


async def record_opening_balance(
    session: AsyncSession, account_id: str, amount: Decimal, *, at: datetime | None = None
) -> None:
    """Take over an account's opening balance (site import) as one ledger entry, once.

    A later call with the same or any other amount does nothing: an opening balance is never
    re-applied. A zero amount posts nothing. Locks the wallet; flushes, does not commit.
    """
    amount = money(amount, "opening_balance")
    if amount == 0:
        return
    key = opening_key(account_id)
    _, site = await account_site(session, account_id)
    await lock_wallet(session, account_id)
    # Checked under the lock: a concurrent import of the same account has committed by now.
    if await find_entry(session, key) is not None:
        return
    await post(
        session,
        key=key,
        site_id=site.id,
        currency=site.currency,
        kind="opening",
        account_id=account_id,
        description="opening balance",
        legs=[
            (wallet_account(site.id, account_id), amount),
            (site_account(site.id, LedgerKind.OPENING), -amount),
        ],
        at=at,
    )
