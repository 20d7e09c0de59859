"""The double-entry ledger: the chart of accounts, one atomic `post()` of a balanced entry, and
the wallet row lock every wallet movement takes.

Sign convention (see `wallet.models`): positive = credit, negative = debit; an entry's legs sum to
zero; a household wallet's balance is the sum of its postings.

Nothing here commits: the caller owns the transaction. `lock_wallet` is the one place that takes
the wallet's row lock (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the engine's BEGIN
IMMEDIATE has already serialised the whole transaction).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import String, column, event, func, table
from sqlalchemy import select as sql_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from column_types import MONEY_EXPONENT, Money
from column_types import dialect_insert as columns_dialect_insert
from wallet.errors import IdempotencyConflict, InvalidInput, NotFound, UnbalancedEntry
from wallet.models import Account, JournalEntry, LedgerAccount, Posting, Wallet

# The site table belongs to csms, which the wallet must not import; these are the only columns
# the wallet reads from it (currency, and the calendar of the friendly-credit rules).
SITE = table(
    "site",
    column("id", String),
    column("currency", String),
    column("timezone", String),
    column("country", String),
    column("region", String),
    column("max_top_up", Money()),
    column("max_voucher", Money()),
)

MAX_KEY_LENGTH = 200
_ENTRY = JournalEntry.__table__  # type: ignore[attr-defined]
_POSTING = Posting.__table__  # type: ignore[attr-defined]
_WALLET = Wallet.__table__  # type: ignore[attr-defined]


class LedgerKind(StrEnum):
    WALLET = "wallet"  # a household's prepaid money (credit-natured)
    DEBT = "debt"  # a household's old arrears, a receivable (debit-natured)
    REVENUE = "revenue"  # per site and service
    VAT = "vat_payable"
    CASH = "cash"  # the desk's cash drawer
    VOUCHERS = "vouchers_outstanding"  # value of issued, unredeemed voucher codes
    VOUCHER_SALES = "voucher_sales"  # what voucher sellers owe for issued batches
    PAYMENTS = "payments"  # clearing account of an online payment provider
    OPENING = "opening"  # counterpart of opening balances taken over at import
    CORRECTIONS = "corrections"  # counterpart of staff corrections


@dataclass(frozen=True, slots=True)
class LedgerRef:
    """A ledger account by its derived id; created on first use."""

    id: str
    site_id: str
    kind: LedgerKind
    account_id: str | None = None
    service: str | None = None


def wallet_account(site_id: str, account_id: str) -> LedgerRef:
    return LedgerRef(f"wallet:{account_id}", site_id, LedgerKind.WALLET, account_id)


def debt_account(site_id: str, account_id: str) -> LedgerRef:
    return LedgerRef(f"debt:{account_id}", site_id, LedgerKind.DEBT, account_id)


def revenue_account(site_id: str, service: str) -> LedgerRef:
    return LedgerRef(f"revenue:{site_id}:{service}", site_id, LedgerKind.REVENUE, service=service)


def site_account(site_id: str, kind: LedgerKind, qualifier: str | None = None) -> LedgerRef:
    suffix = f":{qualifier}" if qualifier else ""
    return LedgerRef(f"{kind.value}:{site_id}{suffix}", site_id, kind)


@dataclass(frozen=True, slots=True)
class Leg:
    ledger_account_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    key: str
    site_id: str
    account_id: str | None
    kind: str
    legs: tuple[Leg, ...]
    created_at: datetime
    description: str | None = None
    reference: str | None = None
    reason: str | None = None
    staff: str | None = None
    # True when the key had been posted before and this is the original entry, untouched.
    replayed: bool = False

    def amount_on(self, ledger_account_id: str) -> Decimal:
        return sum(
            (leg.amount for leg in self.legs if leg.ledger_account_id == ledger_account_id),
            Decimal(0),
        )


def money(value: Any, field: str, *, positive: bool = False, allow_zero: bool = True) -> Decimal:
    """A money amount as exact Decimal with at most 4 decimals; floats are refused, not rounded."""
    if isinstance(value, float | bool) or value is None:
        raise InvalidInput("must be a decimal amount (string or Decimal), not " +
                           type(value).__name__, field=field)
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except ArithmeticError as exc:
        raise InvalidInput(f"not a decimal amount: {value!r}", field=field) from exc
    if not amount.is_finite():
        raise InvalidInput("must be a finite amount", field=field)
    if amount != amount.quantize(MONEY_EXPONENT):
        raise InvalidInput(f"{amount} has more than 4 decimals", field=field)
    if positive and amount <= 0:
        raise InvalidInput(f"must be greater than zero, got {amount}", field=field)
    if not allow_zero and amount == 0:
        raise InvalidInput("must not be zero", field=field)
    return amount


def check_key(key: str, field: str = "key") -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("an idempotency key is required", field=field)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"longer than {MAX_KEY_LENGTH} characters", field=field)
    return key


def validate_legs(legs: Sequence[tuple[LedgerRef, Decimal]]) -> list[tuple[LedgerRef, Decimal]]:
    """Merge legs per account, drop zero legs, and refuse an entry that does not balance."""
    merged: dict[str, tuple[LedgerRef, Decimal]] = {}
    for index, (ref, amount) in enumerate(legs):
        amount = money(amount, f"legs[{index}].amount")
        previous = merged.get(ref.id)
        merged[ref.id] = (ref, amount + (previous[1] if previous else Decimal(0)))
    result = [(ref, amount) for ref, amount in merged.values() if amount != 0]
    total = sum((amount for _, amount in result), Decimal(0))
    if total != 0:
        raise UnbalancedEntry(f"legs sum to {total}, not zero", field="legs")
    if len(result) < 2:
        raise UnbalancedEntry("an entry moves money between at least two accounts", field="legs")
    return result


def dialect_insert(session: AsyncSession, model: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's database."""
    return columns_dialect_insert(session.get_bind().dialect.name, model)


# Ledger accounts are never deleted, so once one is committed it exists for good: remember that per
# database (engine) and skip the upsert on the hot path. Ids join this set only after the
# transaction that created (or saw) them commits, so a rollback cannot leave a wrong entry.
_KNOWN_ACCOUNTS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _known(session: AsyncSession) -> set[str]:
    return _KNOWN_ACCOUNTS.setdefault(session.get_bind(), set())


def _remember_after_commit(session: AsyncSession, ids: Sequence[str]) -> None:
    pending: set[str] | None = session.info.get("wallet.pending_accounts")
    if pending is None:
        pending = session.info["wallet.pending_accounts"] = set()
        known = _known(session)
        sync_session = session.sync_session

        def committed(_: Any) -> None:
            known.update(pending)
            pending.clear()

        def rolled_back(_: Any) -> None:
            pending.clear()

        event.listen(sync_session, "after_commit", committed)
        event.listen(sync_session, "after_rollback", rolled_back)
    pending.update(ids)


async def ensure_ledger_accounts(
    session: AsyncSession, refs: Sequence[LedgerRef], currency: str
) -> None:
    known = _known(session)
    refs = [ref for ref in refs if ref.id not in known]
    if not refs:
        return
    _remember_after_commit(session, [ref.id for ref in refs])
    statement = dialect_insert(session, LedgerAccount).on_conflict_do_nothing()
    await session.exec(
        statement,
        params=[
            {"id": ref.id, "site_id": ref.site_id, "kind": ref.kind.value,
             "account_id": ref.account_id, "service": ref.service, "currency": currency}
            for ref in refs
        ],
    )


async def find_entry(session: AsyncSession, key: str) -> Entry | None:
    row = (await session.exec(select(JournalEntry).where(JournalEntry.key == key))).first()
    if row is None:
        return None
    legs = (
        await session.exec(
            select(col(Posting.ledger_account_id), col(Posting.amount))
            .where(Posting.entry_id == row.id)
            .order_by(col(Posting.id))
        )
    ).all()
    return Entry(
        id=row.id, key=row.key, site_id=row.site_id, account_id=row.account_id, kind=row.kind,
        legs=tuple(Leg(account, amount) for account, amount in legs), created_at=row.created_at,
        description=row.description, reference=row.reference, reason=row.reason,
        staff=row.staff, replayed=True,
    )


async def post(
    session: AsyncSession,
    *,
    key: str,
    site_id: str,
    currency: str,
    kind: str,
    legs: Sequence[tuple[LedgerRef, Decimal]],
    account_id: str | None = None,
    description: str | None = None,
    reference: str | None = None,
    reason: str | None = None,
    staff: str | None = None,
    at: datetime,
    wallet_values: Mapping[str, Any] | None = None,
) -> Entry:
    """Post one balanced journal entry, once per `key`.

    Replaying a key returns the original entry (`replayed=True`) and moves nothing; the same key
    with different legs raises `IdempotencyConflict`. Legs on household wallets also move the
    wallet row's cached balance; the caller must hold that wallet's lock (`lock_wallet`).
    `wallet_values` are further columns of the wallet row of `account_id` to set in that same
    UPDATE (held amount, alert state), saving a round trip inside the lock. Flushes, never
    commits.
    """
    check_key(key)
    checked = validate_legs(legs)
    entry_id = uuid.uuid4().hex
    await ensure_ledger_accounts(session, [ref for ref, _ in checked], currency)
    # Insert first and let the unique key decide: the usual case (a new key) costs no lookup,
    # and two racing posts of one key cannot both get in. Plain Core on the session's connection:
    # this runs for every settled session.
    connection = await session.connection()
    inserted = await connection.execute(
        dialect_insert(session, _ENTRY)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_ENTRY.c.id),
        {
            "id": entry_id, "key": key, "site_id": site_id, "account_id": account_id,
            "kind": kind, "description": description, "reference": reference, "reason": reason,
            "staff": staff, "created_at": at,
        },
    )
    if inserted.first() is None:
        existing = await find_entry(session, key)
        assert existing is not None
        wanted = sorted((ref.id, amount) for ref, amount in checked)
        if sorted((leg.ledger_account_id, leg.amount) for leg in existing.legs) != wanted:
            raise IdempotencyConflict(f"key {key!r} was posted before with other legs",
                                      field="key")
        return existing
    await connection.execute(
        _POSTING.insert(),
        [{"entry_id": entry_id, "ledger_account_id": ref.id, "amount": amount}
         for ref, amount in checked],
    )
    extra = dict(wallet_values or {})
    for ref, amount in checked:
        if ref.kind is LedgerKind.WALLET:
            values = extra if ref.account_id == account_id else {}
            extra = {} if ref.account_id == account_id else extra
            await connection.execute(
                _WALLET.update()
                .where(_WALLET.c.account_id == ref.account_id)
                .values(balance=_WALLET.c.balance + amount, **values)
            )
    if extra:
        await connection.execute(
            _WALLET.update().where(_WALLET.c.account_id == account_id).values(**extra)
        )
    return Entry(
        id=entry_id, key=key, site_id=site_id, account_id=account_id, kind=kind,
        legs=tuple(Leg(ref.id, amount) for ref, amount in checked), created_at=at,
        description=description, reference=reference, reason=reason, staff=staff,
    )


@dataclass(frozen=True, slots=True)
class SiteInfo:
    id: str
    currency: str
    timezone: str
    country: str
    region: str | None
    # The most a person may put in at once (site file `max_top_up`, `max_voucher`).
    max_top_up: Decimal
    max_voucher: Decimal


async def account_site(session: AsyncSession, account_id: str) -> tuple[Account, SiteInfo]:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"unknown account {account_id!r}", field="account_id")
    return account, await site_info(session, account.site_id)


async def site_info(session: AsyncSession, site_id: str) -> SiteInfo:
    connection = await session.connection()
    row = (
        await connection.execute(
            sql_select(SITE.c.currency, SITE.c.timezone, SITE.c.country, SITE.c.region,
                       SITE.c.max_top_up, SITE.c.max_voucher)
            .where(SITE.c.id == site_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"unknown site {site_id!r}", field="site_id")
    values = row._mapping
    return SiteInfo(site_id, values["currency"], values["timezone"], values["country"],
                    values["region"], values["max_top_up"], values["max_voucher"])


@dataclass(frozen=True, slots=True)
class WalletSnapshot:
    """The wallet row as read (under the lock): an immutable value, so the "before" of a movement
    cannot change under the code that compares it with the "after"."""

    account_id: str
    site_id: str
    currency: str
    balance: Decimal
    held: Decimal
    emergency_active: bool
    redeem_failures: int
    redeem_locked_until: datetime | None
    alerts_fired: tuple[str, ...]
    exhausted_alerted: bool
    supply_cut: bool

    @classmethod
    def of(cls, row: Wallet) -> WalletSnapshot:
        return cls(row.account_id, row.site_id, row.currency, row.balance, row.held,
                   row.emergency_active, row.redeem_failures, row.redeem_locked_until,
                   tuple(row.alerts_fired), row.exhausted_alerted, row.supply_cut)


async def lock_wallet(session: AsyncSession, account_id: str) -> WalletSnapshot:
    """The household's wallet row, locked for the rest of the transaction (created on first
    use). Every function that moves a wallet's money calls this first, so concurrent movements
    on one wallet queue up instead of losing updates."""
    wallet = await _select_wallet(session, account_id)
    if wallet is not None:
        return wallet
    _, site = await account_site(session, account_id)
    await session.exec(
        dialect_insert(session, Wallet).on_conflict_do_nothing(),
        params={
            "account_id": account_id, "site_id": site.id, "currency": site.currency,
            "balance": Decimal(0), "held": Decimal(0), "emergency_active": False,
            "redeem_failures": 0, "alerts_fired": [], "exhausted_alerted": False,
            "supply_cut": False,
        },
    )
    wallet = await _select_wallet(session, account_id)
    assert wallet is not None  # inserted just above or by a concurrent transaction
    return wallet


async def _select_wallet(session: AsyncSession, account_id: str) -> WalletSnapshot | None:
    # populate_existing: the row may be in the identity map from before another transaction
    # changed it; a locked read must return what is in the database now.
    result = await session.exec(
        select(Wallet)
        .where(Wallet.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = result.first()
    return None if row is None else WalletSnapshot.of(row)


async def ledger_balance(session: AsyncSession, ledger_account_id: str) -> Decimal:
    """Sum of an account's postings (the authority the cached wallet balance must equal)."""
    total = (
        await session.exec(
            select(func.sum(Posting.amount)).where(Posting.ledger_account_id == ledger_account_id)
        )
    ).one()
    return total if total is not None else Decimal("0.0000")


async def trial_balance(session: AsyncSession, site_id: str | None = None) -> Decimal:
    """Sum of every posting (of one site's entries): zero whenever the books are consistent."""
    statement = select(func.sum(Posting.amount))
    if site_id is not None:
        statement = statement.join(JournalEntry, col(JournalEntry.id) == Posting.entry_id).where(
            JournalEntry.site_id == site_id
        )
    total = (await session.exec(statement)).one()
    return total if total is not None else Decimal("0.0000")
