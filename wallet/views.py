"""Reading a wallet without a lock: balance and available money, the credit decision now, the
ledger page by page, the account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.credit import (
    CreditDecision,
    CreditPolicy,
    Mode,
    decide,
)
from wallet.errors import (
    InvalidInput,
)
from wallet.ledger import (
    SiteInfo,
    WalletSnapshot,
    account_site,
)
from wallet.models import (
    Account,
    JournalEntry,
    Posting,
    Wallet,
)
from wallet.movement import (
    POLICY_TABLE as _POLICY,
)
from wallet.movement import (
    SNAPSHOT_COLUMNS,
    calendar_of,
    get_policy,
    instant,
    policy_of,
    site_of,
    state_of,
)
from wallet.movement import (
    WALLET_TABLE as _WALLET,
)


@dataclass(frozen=True, slots=True)
class WalletView:
    currency: str
    balance: Decimal
    available: Decimal
    holds: Decimal
    credit: Decimal
    emergency_active: bool = False
    emergency_available: bool = False
    mode: str = Mode.PREPAID.value


async def _read(
    session: AsyncSession, account_id: str
) -> tuple[WalletSnapshot, CreditPolicy, SiteInfo]:
    """Wallet and policy in one round trip, without a lock (an account that never moved money
    reads as an empty wallet)."""
    connection = await session.connection()
    row = (
        await connection.execute(
            select(_WALLET, _POLICY.c.document)
            .select_from(_WALLET.outerjoin(_POLICY,
                                           _POLICY.c.account_id == _WALLET.c.account_id))
            .where(_WALLET.c.account_id == account_id)
        )
    ).first()
    if row is not None:
        mapping = row._mapping
        wallet = WalletSnapshot(*(mapping[_WALLET.c[name]] for name in SNAPSHOT_COLUMNS))
        site = await site_of(session, wallet.site_id)
        return wallet, policy_of(mapping[_POLICY.c.document]), site
    account, site = await account_site(session, account_id)
    empty = Wallet(account_id=account_id, site_id=account.site_id, currency=site.currency,
                   balance=Decimal("0.0000"), held=Decimal("0.0000"))
    return WalletSnapshot.of(empty), await get_policy(session, account_id), site


async def credit_decision(
    session: AsyncSession,
    account_id: str,
    at: datetime,
    *,
    needed: Decimal = Decimal(0),
    supply_on: bool | None = None,
) -> CreditDecision:
    """The pure credit rule (`wallet.credit.decide`) over the account's stored state: may it
    start, must running use stop or supply be cut, and why. `supply_on` defaults to the supply
    state last noted. No lock."""
    now = instant(at)
    wallet, policy, site = await _read(session, account_id)
    on = (not wallet.supply_cut) if supply_on is None else supply_on
    return decide(policy, state_of(wallet), now, calendar_of(site), needed=needed, supply_on=on)


async def wallet_view(
    session: AsyncSession, account_id: str, at: datetime
) -> WalletView:
    """Balance, open holds, credit allowed now and available money. No lock."""
    now = instant(at)
    wallet, policy, site = await _read(session, account_id)
    decision = decide(policy, state_of(wallet), now, calendar_of(site))
    return WalletView(
        currency=wallet.currency, balance=wallet.balance, available=decision.available,
        holds=wallet.held, credit=decision.credit_allowed,
        emergency_active=wallet.emergency_active,
        emergency_available=decision.emergency_available, mode=policy.mode.value,
    )


@dataclass(frozen=True, slots=True)
class LedgerLine:
    posting_id: int
    entry_id: str
    at: datetime
    kind: str
    amount: Decimal
    description: str | None
    reference: str | None
    reason: str | None
    staff: str | None


@dataclass(frozen=True, slots=True)
class LedgerPage:
    lines: list[LedgerLine]
    # Pass as `before` for the next (older) page; None on the last page.
    next_before: int | None


async def ledger_page(
    session: AsyncSession, account_id: str, *, limit: int = 50, before: int | None = None
) -> LedgerPage:
    """The wallet's postings, newest first, `limit` at a time (cursor paging by posting id)."""
    if not 1 <= limit <= 500:
        raise InvalidInput("must be between 1 and 500", field="limit")
    await account_site(session, account_id)
    statement = (
        select(Posting, JournalEntry)
        .join(JournalEntry, col(JournalEntry.id) == Posting.entry_id)
        .where(Posting.ledger_account_id == f"wallet:{account_id}")
        .order_by(col(Posting.id).desc())
        .limit(limit + 1)
    )
    if before is not None:
        statement = statement.where(col(Posting.id) < before)
    rows = (await session.exec(statement)).all()
    lines = [
        LedgerLine(posting.id or 0, entry.id, entry.created_at, entry.kind, posting.amount,
                   entry.description, entry.reference, entry.reason, entry.staff)
        for posting, entry in rows[:limit]
    ]
    return LedgerPage(lines, lines[-1].posting_id if len(rows) > limit else None)


async def account_of(session: AsyncSession, account_id: str) -> Account:
    account, _ = await account_site(session, account_id)
    return account
