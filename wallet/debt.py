"""Old arrears (Tilgung): taking them over, what is outstanding, and the daily rate."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.credit import (
    Mode,
)
from wallet.errors import (
    InvalidInput,
)
from wallet.ledger import (
    Entry,
    LedgerKind,
    check_key,
    debt_account,
    find_entry,
    ledger_balance,
    lock_wallet,
    money,
    post,
    site_account,
    wallet_account,
)
from wallet.movement import after_movement, get_policy, instant


async def record_debt(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    reason: str,
    staff: str,
    key: str,
    at: datetime,
) -> Entry:
    """Old arrears taken over for recovery (Tilgung): the household's debt account is debited
    against the site's opening account; the wallet is untouched. Locks the wallet."""
    check_key(key)
    amount = money(amount, "amount", positive=True)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("arrears need a reason", field="reason")
    wallet = await lock_wallet(session, account_id)
    return await post(
        session, key=key, site_id=wallet.site_id, currency=wallet.currency, kind="debt",
        account_id=account_id, reason=reason, staff=staff, description="arrears taken over",
        legs=[(debt_account(wallet.site_id, account_id), -amount),
              (site_account(wallet.site_id, LedgerKind.OPENING), amount)],
        at=instant(at),
    )


async def debt_outstanding(session: AsyncSession, account_id: str) -> Decimal:
    return -await ledger_balance(session, f"debt:{account_id}")


async def recover_debt_daily(
    session: AsyncSession, account_id: str, *, day: date, at: datetime
) -> Entry | None:
    """The policy's daily rate (Tagesrate) for `day`, moved from the wallet to the debt account,
    at most once per day and never more than is outstanding. Locks the wallet."""
    now = instant(at)
    wallet = await lock_wallet(session, account_id)
    key = f"debt-daily:{account_id}:{day.isoformat()}"
    existing = await find_entry(session, key)
    if existing is not None:
        return existing
    policy = await get_policy(session, account_id)
    if policy.mode is not Mode.PREPAID:
        return None
    amount = min(policy.debt_recovery.daily_rate, await debt_outstanding(session, account_id))
    if amount <= 0:
        return None
    entry = await post(
        session, key=key, site_id=wallet.site_id, currency=wallet.currency,
        kind="debt_recovery", account_id=account_id, description=f"daily rate {day}",
        legs=[(wallet_account(wallet.site_id, account_id), -amount),
              (debt_account(wallet.site_id, account_id), amount)],
        at=now,
    )
    await after_movement(session, wallet, policy, balance_after=wallet.balance - amount,
                         held_after=wallet.held, emergency_after=wallet.emergency_active,
                         top_up=False, at=now)
    return entry
