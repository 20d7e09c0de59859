"""Money coming in: top-ups (with emergency credit repaid first and debt recovered), cash at the
desk, staff corrections and the opening balance taken over at import. Each locks the wallet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.amounts import AmountInvalid, amount_problems
from wallet.credit import (
    Mode,
)
from wallet.errors import (
    IdempotencyConflict,
    InvalidInput,
)
from wallet.ledger import (
    Entry,
    LedgerKind,
    LedgerRef,
    SiteInfo,
    account_site,
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
from wallet.models import (
    JournalEntry,
    Posting,
)
from wallet.movement import (
    CENT,
    TOPUP_KINDS,
    after_movement,
    calendar_of,
    get_policy,
    instant,
    set_policy,
    site_of,
    with_mode,
)


@dataclass(frozen=True, slots=True)
class TopUp:
    entry: Entry
    credited: Decimal  # to the wallet
    debt_recovered: Decimal
    balance: Decimal  # after the top-up (for a replay: the wallet's balance now)


def _week_start(site: SiteInfo, at: datetime) -> datetime:
    local = calendar_of(site).local(at)
    monday = local.date() - timedelta(days=local.weekday())
    start = datetime(monday.year, monday.month, monday.day, tzinfo=local.tzinfo)
    return start.astimezone(UTC)


async def _recovered_this_week(
    session: AsyncSession, account_id: str, site: SiteInfo, at: datetime
) -> Decimal:
    total = (
        await session.exec(
            select(func.sum(Posting.amount))
            .join(JournalEntry, col(JournalEntry.id) == Posting.entry_id)
            .where(
                Posting.ledger_account_id == f"debt:{account_id}",
                col(JournalEntry.kind).in_(TOPUP_KINDS),
                col(JournalEntry.created_at) >= _week_start(site, at),
            )
        )
    ).one()
    return total or Decimal(0)


async def top_up(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    key: str,
    source: LedgerRef,
    kind: str = "topup",
    reference: str | None = None,
    staff: str | None = None,
    description: str | None = None,
    at: datetime,
) -> TopUp:
    """Credit money received from `source` (cash, vouchers outstanding, a payment provider).

    Emergency credit in use is repaid first (the wallet was below zero: the top-up fills it);
    debt recovery takes the policy's percentage of the rest, within the weekly cap; an account in
    free mode goes back to prepaid billing. Top-ups re-arm low-balance alerts. Locks the wallet.
    """
    check_key(key)
    amount = money(amount, "amount", positive=True)
    now = instant(at)
    wallet = await lock_wallet(session, account_id)
    existing = await find_entry(session, key)
    if existing is not None:
        wallet_leg = existing.amount_on(f"wallet:{account_id}")
        if wallet_leg == 0 or existing.amount_on(source.id) != -amount:
            raise IdempotencyConflict(f"key {key!r} was a different movement", field="key")
        recovered = existing.amount_on(f"debt:{account_id}")
        return TopUp(existing, wallet_leg, recovered, wallet.balance)
    policy = await get_policy(session, account_id)
    site = await site_of(session, wallet.site_id)
    recovery = policy.debt_recovery
    recovered = Decimal(0)
    if recovery.topup_percent > 0:
        outstanding = -await ledger_balance(session, f"debt:{account_id}")
        repaying_emergency = min(amount, max(Decimal(0), -wallet.balance))
        share = ((amount - repaying_emergency) * recovery.topup_percent / 100).quantize(
            CENT, ROUND_DOWN)
        recovered = min(share, outstanding)
        if recovery.weekly_cap is not None:
            done = await _recovered_this_week(session, account_id, site, now)
            recovered = min(recovered, recovery.weekly_cap - done)
        recovered = max(recovered, Decimal(0))
    credited = amount - recovered
    entry = await post(
        session, key=key, site_id=wallet.site_id, currency=wallet.currency, kind=kind,
        account_id=account_id, reference=reference, staff=staff,
        description=description or kind,
        legs=[
            (source, -amount),
            (wallet_account(wallet.site_id, account_id), credited),
            (debt_account(wallet.site_id, account_id), recovered),
        ],
        at=now,
    )
    balance_after = wallet.balance + credited
    emergency_after = wallet.emergency_active and balance_after - wallet.held < 0
    if policy.mode is Mode.FREE:
        # Seed 001: inserting a valid credit card switches back to customer billing.
        await set_policy(session, account_id, with_mode(policy, Mode.PREPAID),
                         staff="topup", at=now)
        policy = with_mode(policy, Mode.PREPAID)
    await after_movement(session, wallet, policy, balance_after=balance_after,
                         held_after=wallet.held, emergency_after=emergency_after,
                         top_up=True, at=now)
    return TopUp(entry, credited, recovered, balance_after)


def cash_topup_key(site_id: str, receipt: str) -> str:
    return f"cash:{site_id}:{receipt}"


async def top_up_cash(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal | str,  # typed in: text is checked whole (wallet.amounts)
    receipt: str,
    staff: str | None,
    at: datetime,
) -> TopUp:
    """Cash paid at a desk, with its receipt number; the same receipt twice tops up once (and a
    receipt already used for another account is refused). The amount keeps the money rule of
    `wallet.amounts` (the currency's minor unit, at most the site's `max_top_up`); every problem
    is raised at once (`InvalidInputs`). Locks the wallet."""
    _, site = await account_site(session, account_id)
    problems = amount_problems(amount, "amount", currency=site.currency,
                               maximum=site.max_top_up, per="per top-up")
    if not isinstance(receipt, str) or not receipt.strip() or len(receipt) > 120:
        problems.append(("reference", "a receipt number (1-120 characters) is required"))
    if problems:
        raise AmountInvalid(problems)
    return await top_up(
        session, account_id=account_id, amount=Decimal(amount),
        key=cash_topup_key(site.id, receipt),
        source=site_account(site.id, LedgerKind.CASH), kind="topup", reference=receipt,
        staff=staff, description=f"cash top-up, receipt {receipt}", at=at,
    )


async def correct(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    reason: str,
    staff: str,
    key: str,
    at: datetime,
) -> Entry:
    """A correction is a new entry, never an edit: `amount` is credited to the wallet (negative:
    debited) against the site's corrections account, with the reason and the staff member who
    made it. Locks the wallet."""
    check_key(key)
    amount = money(amount, "amount", allow_zero=False)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a correction needs a reason", field="reason")
    if not isinstance(staff, str) or not staff.strip():
        raise InvalidInput("a correction needs the staff member who made it", field="staff")
    now = instant(at)
    wallet = await lock_wallet(session, account_id)
    policy = await get_policy(session, account_id)
    entry = await post(
        session, key=key, site_id=wallet.site_id, currency=wallet.currency, kind="correction",
        account_id=account_id, reason=reason, staff=staff, description="correction",
        legs=[(wallet_account(wallet.site_id, account_id), amount),
              (site_account(wallet.site_id, LedgerKind.CORRECTIONS), -amount)],
        at=now,
    )
    if not entry.replayed:
        await after_movement(session, wallet, policy, balance_after=wallet.balance + amount,
                             held_after=wallet.held, emergency_after=wallet.emergency_active,
                             top_up=False, at=now)
    return entry


def opening_key(account_id: str) -> str:
    return f"opening:{account_id}"


async def record_opening_balance(
    session: AsyncSession, account_id: str, amount: Decimal, *, at: datetime
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
    wallet = await lock_wallet(session, account_id)
    # Checked under the lock: a concurrent import of the same account has committed by now.
    if await find_entry(session, key) is not None:
        return
    now = instant(at)
    await post(
        session, key=key, site_id=site.id, currency=site.currency, kind="opening",
        account_id=account_id, description="opening balance",
        legs=[(wallet_account(site.id, account_id), amount),
              (site_account(site.id, LedgerKind.OPENING), -amount)],
        at=now,
    )
    policy = await get_policy(session, account_id)
    await after_movement(session, wallet, policy, balance_after=wallet.balance + amount,
                         held_after=wallet.held, emergency_after=wallet.emergency_active,
                         top_up=amount > 0, at=now)
