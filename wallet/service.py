"""Wallet operations other packages call, each taking the caller's `AsyncSession` first.

Transactions: every function here flushes its writes and never commits; the caller owns the
transaction and commits (or rolls back) it.

Locking: every function that moves a household's money or changes its holds or credit state takes
that wallet's row lock first (`wallet.ledger.lock_wallet`: `SELECT ... FOR UPDATE` on
PostgreSQL; SQLite transactions are serialised by the engine's BEGIN IMMEDIATE), so concurrent
calls on one wallet from many tasks or nodes queue up and lose nothing. Those are: open_hold,
adjust_hold, settle_hold, release_hold, debit, top_up (and top_up_cash), correct, record_debt,
recover_debt_daily, activate_emergency_credit, note_supply, record_opening_balance and
`wallet.vouchers.redeem_voucher`. Read-only functions (wallet_view, credit_decision, ledger_page,
get_policy) take no lock. Keep locking transactions short: the lock lasts until the caller commits.

Idempotency: every money movement takes a `key` derived from its cause; calling again with the same
key returns the original result and moves nothing.

Time: every function takes `at` (the instant the caller's clock says); None means now (UTC).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alerts import Alert, AlertKind, AlertState, evaluate
from wallet.credit import (
    CreditDecision,
    CreditPolicy,
    Mode,
    PolicyInvalid,
    Reason,
    SiteCalendar,
    WalletState,
    decide,
)
from wallet.errors import (
    CreditRefused,
    HoldClosed,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
)
from wallet.ledger import (
    Entry,
    LedgerKind,
    LedgerRef,
    SiteInfo,
    WalletSnapshot,
    account_site,
    check_key,
    debt_account,
    dialect_insert,
    find_entry,
    ledger_balance,
    lock_wallet,
    money,
    post,
    revenue_account,
    site_account,
    site_info,
    wallet_account,
)
from wallet.models import (
    Account,
    AlertOutbox,
    CreditPolicyRecord,
    HoldAdjustment,
    HoldRecord,
    JournalEntry,
    Posting,
    Wallet,
)

CENT = Decimal("0.01")
# Revenue accounts are per service; these are the ones the system books, others may be added.
SERVICES = ("charging", "laundry", "electricity", "base_fee")
_SERVICE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Entry kinds whose debt recovery counts against the weekly cap of top-up recovery.
TOPUP_KINDS = ("topup", "voucher", "payment")


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    key: str
    account_id: str
    amount: Decimal
    status: str
    service: str
    reference: str | None
    free: bool
    opened_at: datetime
    closed_at: datetime | None = None
    entry_id: str | None = None
    net: Decimal | None = None
    vat: Decimal | None = None
    gross: Decimal | None = None
    close_key: str | None = None

    @classmethod
    def of(cls, row: Any) -> Hold:
        """From a `HoldRecord` or a row mapping of its table."""
        get = row.__getitem__ if isinstance(row, Mapping) else row.__getattribute__
        return cls(get("id"), get("key"), get("account_id"), get("amount"), get("status"),
                   get("service"), get("reference"), get("free"), get("opened_at"),
                   get("closed_at"), get("entry_id"), get("net"), get("vat"), get("gross"),
                   get("close_key"))


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


@dataclass(frozen=True, slots=True)
class Settlement:
    hold: Hold
    # None when nothing was debited (free mode, or a zero bill).
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class TopUp:
    entry: Entry
    credited: Decimal  # to the wallet
    debt_recovered: Decimal
    balance: Decimal  # after the top-up (for a replay: the wallet's balance now)


@dataclass(frozen=True, slots=True)
class Debit:
    entry: Entry | None
    decision: CreditDecision


# -- context -------------------------------------------------------------------------------------


async def _site(session: AsyncSession, site_id: str) -> SiteInfo:
    """Site facts change only by import; a session is short-lived, so it may keep them."""
    cache: dict[str, SiteInfo] = session.info.setdefault("wallet.sites", {})
    found = cache.get(site_id)
    if found is None:
        found = cache[site_id] = await site_info(session, site_id)
    return found


def calendar_of(site: SiteInfo) -> SiteCalendar:
    return SiteCalendar(site.timezone, site.country, site.region)


async def get_policy(session: AsyncSession, account_id: str) -> CreditPolicy:
    """The account's credit policy (the default policy until an owner sets one)."""
    record = (
        await session.exec(
            select(CreditPolicyRecord.document).where(CreditPolicyRecord.account_id == account_id)
        )
    ).first()
    return CreditPolicy() if record is None else CreditPolicy.from_document(record)


async def set_policy(
    session: AsyncSession,
    account_id: str,
    policy: CreditPolicy | dict[str, Any],
    *,
    staff: str | None = None,
    at: datetime | None = None,
) -> CreditPolicy:
    """Replace the account's credit policy (a document is validated; every problem is reported
    with its path as `PolicyInvalid`). Flushes, does not commit."""
    parsed = policy if isinstance(policy, CreditPolicy) else CreditPolicy.from_document(policy)
    await account_site(session, account_id)
    record = await session.get(CreditPolicyRecord, account_id)
    now = at or datetime.now(UTC)
    if record is None:
        session.add(CreditPolicyRecord(account_id=account_id, document=parsed.to_document(),
                                       updated_at=now, updated_by=staff))
    else:
        record.document = parsed.to_document()
        record.updated_at = now
        record.updated_by = staff
        session.add(record)
    await session.flush()
    return parsed


def _state(wallet: WalletSnapshot) -> WalletState:
    return WalletState(wallet.balance, wallet.held, wallet.emergency_active)


def _service(service: str) -> str:
    if not isinstance(service, str) or not _SERVICE_PATTERN.match(service):
        raise InvalidInput(f"not a service name: {service!r} (e.g. {', '.join(SERVICES)})",
                           field="service")
    return service


def _now(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise InvalidInput("instant must be timezone-aware", field="at")
    return at


# -- alerts --------------------------------------------------------------------------------------


async def _emit(
    session: AsyncSession, account_id: str, alerts: Sequence[Alert], at: datetime,
    facts: dict[str, Any],
) -> None:
    if not alerts:
        return
    await session.exec(
        AlertOutbox.__table__.insert(),  # type: ignore[attr-defined]
        params=[
            {"account_id": account_id, "kind": alert.kind.value, "created_at": at,
             "attempts": 0,
             "payload": {**facts, "threshold": None if alert.threshold is None
                         else str(alert.threshold)}}
            for alert in alerts
        ],
    )


@dataclass(frozen=True, slots=True)
class _Changes:
    values: dict[str, Any]
    alerts: tuple[Alert, ...]
    facts: dict[str, Any]


def _changes(
    wallet: WalletSnapshot,
    policy: CreditPolicy,
    *,
    balance_after: Decimal,
    held_after: Decimal,
    emergency_after: bool,
    top_up: bool,
) -> _Changes:
    """The wallet row's new held amount and credit state, and the alerts the movement crossed.
    `wallet` is the row as locked before the movement."""
    credit = policy.emergency_credit if emergency_after else Decimal(0)
    evaluation = evaluate(
        policy.low_balance_thresholds,
        AlertState(frozenset(Decimal(v) for v in wallet.alerts_fired), wallet.exhausted_alerted),
        balance_before=wallet.balance,
        balance_after=balance_after,
        available_after=balance_after - held_after + credit,
        top_up=top_up,
    )
    values: dict[str, Any] = {}
    if held_after != wallet.held:
        values["held"] = held_after
    if emergency_after != wallet.emergency_active:
        values["emergency_active"] = emergency_after
    if evaluation.changed:
        values["alerts_fired"] = sorted(str(v) for v in evaluation.state.fired)
        values["exhausted_alerted"] = evaluation.state.exhausted
    facts = {"currency": wallet.currency, "balance": str(balance_after),
             "available": str(balance_after - held_after + credit)}
    return _Changes(values, evaluation.alerts, facts)


async def _after_movement(
    session: AsyncSession,
    wallet: WalletSnapshot,
    policy: CreditPolicy,
    *,
    balance_after: Decimal,
    held_after: Decimal,
    emergency_after: bool,
    top_up: bool,
    at: datetime,
) -> None:
    """Write `_changes` for a movement whose ledger part (if any) is already posted."""
    changes = _changes(wallet, policy, balance_after=balance_after, held_after=held_after,
                       emergency_after=emergency_after, top_up=top_up)
    if changes.values:
        await session.exec(
            update(Wallet).where(col(Wallet.account_id) == wallet.account_id)
            .values(**changes.values).execution_options(synchronize_session=False)
        )
    await _emit(session, wallet.account_id, changes.alerts, at, changes.facts)


_WALLET = Wallet.__table__  # type: ignore[attr-defined]
_HOLD = HoldRecord.__table__  # type: ignore[attr-defined]
_POLICY = CreditPolicyRecord.__table__  # type: ignore[attr-defined]


def _policy_of(document: Any) -> CreditPolicy:
    return CreditPolicy() if document is None else CreditPolicy.from_document(document)


async def _lock(
    session: AsyncSession, *, account_id: str | None = None, hold_id: str | None = None
) -> tuple[WalletSnapshot, CreditPolicy, Hold | None]:
    """Lock the wallet (of the account, or of the hold's account), and read its policy (and the
    hold, locked too) in the same round trip: the lock is what the rest of a movement relies on.

    The wallet comes first in FROM, so every such statement locks wallet before hold and two of
    them cannot deadlock; a hold changed while we waited is re-read by PostgreSQL under the lock.
    Plain Core statements: this is the hot path of every charging session.
    """
    connection = await session.connection()
    joined = _WALLET.outerjoin(_POLICY, _POLICY.c.account_id == _WALLET.c.account_id)
    if hold_id is not None:
        statement = (
            select(_WALLET, _POLICY.c.document, _HOLD)
            .select_from(joined.join(_HOLD, _HOLD.c.account_id == _WALLET.c.account_id))
            .where(_HOLD.c.id == hold_id)
            .with_for_update(of=[_WALLET, _HOLD])
        )
    else:
        statement = (
            select(_WALLET, _POLICY.c.document).select_from(joined)
            .where(_WALLET.c.account_id == account_id)
            .with_for_update(of=_WALLET)
        )
    row = (await connection.execute(statement)).first()
    if row is not None:
        mapping = row._mapping
        wallet = WalletSnapshot(*(mapping[_WALLET.c[name]] for name in _SNAPSHOT_COLUMNS))
        hold = None
        if hold_id is not None:
            hold = Hold.of({column.name: mapping[column] for column in _HOLD.c})
        return wallet, _policy_of(mapping[_POLICY.c.document]), hold
    if account_id is None:
        raise NotFound(f"unknown hold {hold_id!r}", field="hold_id")
    snapshot = await lock_wallet(session, account_id)  # first movement: creates the row
    return snapshot, await get_policy(session, account_id), None


_SNAPSHOT_COLUMNS = (
    "account_id", "site_id", "currency", "balance", "held", "emergency_active",
    "redeem_failures", "redeem_locked_until", "alerts_fired", "exhausted_alerted", "supply_cut",
)


# -- holds ---------------------------------------------------------------------------------------


async def _hold_by_key(session: AsyncSession, key: str) -> Hold | None:
    connection = await session.connection()
    row = (await connection.execute(select(_HOLD).where(_HOLD.c.key == key))).first()
    return None if row is None else Hold.of(row._mapping)


async def _hold(session: AsyncSession, hold_id: str) -> Hold:
    connection = await session.connection()
    row = (await connection.execute(select(_HOLD).where(_HOLD.c.id == hold_id))).first()
    if row is None:
        raise NotFound(f"unknown hold {hold_id!r}", field="hold_id")
    return Hold.of(row._mapping)


async def _locked_hold(
    session: AsyncSession, hold_id: str
) -> tuple[Hold, WalletSnapshot, CreditPolicy]:
    """The hold and its wallet, both locked and current."""
    wallet, policy, hold = await _lock(session, hold_id=hold_id)
    assert hold is not None
    return hold, wallet, policy


async def open_hold(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    key: str,
    service: str,
    reference: str | None = None,
    at: datetime | None = None,
    allow_partial: bool = False,
) -> Hold:
    """Reserve `amount` for a usage that is starting.

    Refused with `CreditRefused` (reason `blocked`, `below_start_minimum`, `credit_exhausted` or
    `insufficient_funds`) when the credit rules do not let it start or, unless `allow_partial`,
    when `amount` exceeds what is available; with `allow_partial` the hold is cut to what is
    available. In `free` mode the hold is recorded and never debited. Locks the wallet.
    """
    check_key(key)
    amount = money(amount, "amount", positive=True)
    _service(service)
    now = _now(at)
    wallet, policy, _ = await _lock(session, account_id=account_id)
    site = await _site(session, wallet.site_id)
    decision = decide(policy, _state(wallet), now, calendar_of(site))
    free = policy.mode is Mode.FREE
    refusal = None
    if not decision.may_start:
        refusal = CreditRefused(
            f"account {account_id} may not start: {decision.reason.value} "
            f"(available {decision.available}, start minimum {policy.start_minimum})",
            reason=decision.reason.value, available=decision.available,
        )
    elif not free and amount > decision.available:
        if not allow_partial:
            refusal = CreditRefused(
                f"hold of {amount} exceeds the available {decision.available}",
                reason="insufficient_funds", available=decision.available,
            )
        amount = decision.available
    if refusal is not None:
        # A replay of a hold opened before is answered with that hold, not refused now.
        existing = await _hold_by_key(session, key)
        if existing is None:
            raise refusal
        return _replayed_hold(existing, account_id, key)
    row = Hold(id=uuid.uuid4().hex, key=key, account_id=account_id, amount=amount,
               status="open", service=service, reference=reference, free=free, opened_at=now)
    connection = await session.connection()
    inserted = await connection.execute(
        dialect_insert(session, _HOLD)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_HOLD.c.id),
        {"id": row.id, "key": key, "account_id": account_id, "amount": amount,
         "status": "open", "service": service, "reference": reference, "free": free,
         "opened_at": now},
    )
    if inserted.first() is None:
        existing = await _hold_by_key(session, key)
        assert existing is not None
        return _replayed_hold(existing, account_id, key)
    await _after_movement(session, wallet, policy, balance_after=wallet.balance,
                          held_after=wallet.held + amount,
                          emergency_after=wallet.emergency_active, top_up=False, at=now)
    return row


def _replayed_hold(existing: Hold, account_id: str, key: str) -> Hold:
    if existing.account_id != account_id:
        raise IdempotencyConflict(f"key {key!r} opened a hold for another account", field="key")
    return existing


async def adjust_hold(
    session: AsyncSession,
    hold_id: str,
    new_amount: Decimal,
    *,
    key: str,
    at: datetime | None = None,
) -> Hold:
    """Raise or lower an open hold to `new_amount` (the live cost so far, or the next step).

    A raise that does not fit the available money is refused with `CreditRefused(reason=
    "credit_exhausted")` unless a friendly-credit window applies (then the wallet may go below
    zero): that answer is the signal to stop the usage. Locks the wallet.
    """
    check_key(key)
    new_amount = money(new_amount, "new_amount", allow_zero=True)
    if new_amount < 0:
        raise InvalidInput("must not be negative", field="new_amount")
    now = _now(at)
    row, wallet, policy = await _locked_hold(session, hold_id)
    done = await session.get(HoldAdjustment, key)
    if done is not None:
        if done.hold_id != hold_id:
            raise IdempotencyConflict(f"key {key!r} adjusted another hold", field="key")
        return row
    if row.status != "open":
        raise HoldClosed(f"hold {hold_id} is {row.status}", field="hold_id")
    delta = new_amount - row.amount
    if delta > 0 and not row.free:
        site = await _site(session, wallet.site_id)
        decision = decide(policy, _state(wallet), now, calendar_of(site), needed=delta)
        if decision.must_stop:
            raise CreditRefused(
                f"raising hold {hold_id} by {delta} exceeds the available {decision.available}",
                reason=decision.reason.value, available=decision.available,
            )
    await session.exec(
        HoldAdjustment.__table__.insert(),  # type: ignore[attr-defined]
        params={"key": key, "hold_id": hold_id, "amount": new_amount, "at": now},
    )
    await session.exec(
        update(HoldRecord).where(col(HoldRecord.id) == hold_id).values(amount=new_amount)
    )
    await _after_movement(session, wallet, policy, balance_after=wallet.balance,
                          held_after=wallet.held + delta,
                          emergency_after=wallet.emergency_active, top_up=False, at=now)
    return Hold.of(await _hold(session, hold_id))


async def _surcharge(
    session: AsyncSession, policy: CreditPolicy, account_id: str, energy_wh: int | None,
    recovery: Decimal | None,
) -> Decimal:
    """Debt recovered with a usage: the tariff's own `recovery` (pricing's `Bill.recovery`) when
    given, else the policy's surcharge per kWh; never more than the debt outstanding."""
    if recovery is not None:
        wanted = money(recovery, "recovery")
        if wanted < 0:
            raise InvalidInput("must not be negative", field="recovery")
    else:
        rate = policy.debt_recovery.surcharge_per_kwh
        if energy_wh is not None and (isinstance(energy_wh, bool)
                                      or not isinstance(energy_wh, int)):
            raise InvalidInput("must be whole Wh", field="energy_wh")
        if not rate or not energy_wh:
            return Decimal(0)
        wanted = (Decimal(energy_wh) / 1000 * rate).quantize(CENT, ROUND_HALF_UP)
    if wanted == 0:
        return Decimal(0)
    outstanding = -await ledger_balance(session, f"debt:{account_id}")
    return max(Decimal(0), min(wanted, outstanding))


def _usage_legs(
    site_id: str, account_id: str, service: str, net: Decimal, vat: Decimal, gross: Decimal,
    surcharge: Decimal,
) -> list[tuple[LedgerRef, Decimal]]:
    return [
        (wallet_account(site_id, account_id), -(gross + surcharge)),
        (revenue_account(site_id, service), net),
        (site_account(site_id, LedgerKind.VAT), vat),
        (debt_account(site_id, account_id), surcharge),
    ]


def _bill(net: Decimal, vat: Decimal, gross: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    net = money(net, "net")
    vat = money(vat, "vat")
    gross = money(gross, "gross")
    for name, value in (("net", net), ("vat", vat), ("gross", gross)):
        if value < 0:
            raise InvalidInput("must not be negative", field=name)
    if net + vat != gross:
        raise InvalidInput(f"{gross} is not net {net} + vat {vat}", field="gross")
    return net, vat, gross


async def settle_hold(
    session: AsyncSession,
    hold_id: str,
    *,
    net: Decimal,
    vat: Decimal,
    gross: Decimal,
    service: str,
    key: str,
    description: str | None = None,
    energy_wh: int | None = None,
    recovery: Decimal | None = None,
    at: datetime | None = None,
) -> Settlement:
    """Close a hold with the final bill: one entry debits the wallet `gross` and credits the
    service's revenue `net` and VAT payable `vat`, plus debt recovery moved from the wallet to
    the debt account (the tariff's `recovery`, or the policy's surcharge per kWh of
    `energy_wh`). The bill may exceed the hold. In free mode the usage is recorded on the hold
    and nothing is debited. Locks the wallet."""
    check_key(key)
    net, vat, gross = _bill(net, vat, gross)
    _service(service)
    now = _now(at)
    row, wallet, policy = await _locked_hold(session, hold_id)
    if row.close_key == key:
        entry = await find_entry(session, key) if row.entry_id else None
        return Settlement(row, entry)
    if row.status != "open":
        raise HoldClosed(f"hold {hold_id} is already {row.status}", field="hold_id")
    entry = None
    surcharge = Decimal(0)
    if not row.free:
        surcharge = await _surcharge(session, policy, row.account_id, energy_wh, recovery)
    debited = Decimal(0) if row.free else gross + surcharge
    changes = _changes(wallet, policy, balance_after=wallet.balance - debited,
                       held_after=wallet.held - row.amount,
                       emergency_after=wallet.emergency_active, top_up=False)
    if debited > 0:
        # The wallet's held amount and alert state ride on the ledger's wallet UPDATE.
        entry = await post(
            session, key=key, site_id=wallet.site_id, currency=wallet.currency,
            kind="settlement", account_id=row.account_id, reference=row.reference,
            description=description or f"{service} {row.reference or row.id}",
            legs=_usage_legs(wallet.site_id, row.account_id, service, net, vat, gross,
                             surcharge),
            at=now, wallet_values=changes.values,
        )
        if entry.replayed:
            raise IdempotencyConflict(f"key {key!r} was used for another movement", field="key")
    elif changes.values:
        await session.exec(
            update(Wallet).where(col(Wallet.account_id) == row.account_id)
            .values(**changes.values).execution_options(synchronize_session=False)
        )
    connection = await session.connection()
    await connection.execute(
        _HOLD.update().where(_HOLD.c.id == hold_id).values(
            status="settled", close_key=key, closed_at=now, entry_id=entry.id if entry else None,
            net=net, vat=vat, gross=gross, energy_wh=energy_wh,
        )
    )
    await _emit(session, row.account_id, changes.alerts, now, changes.facts)
    settled = Hold(row.id, row.key, row.account_id, row.amount, "settled", row.service,
                   row.reference, row.free, row.opened_at, now, entry.id if entry else None,
                   net, vat, gross, key)
    return Settlement(settled, entry)


async def release_hold(
    session: AsyncSession, hold_id: str, *, key: str, at: datetime | None = None
) -> Hold:
    """Give a hold's money back without a bill (the usage never happened). Locks the wallet."""
    check_key(key)
    now = _now(at)
    row, wallet, policy = await _locked_hold(session, hold_id)
    if row.close_key == key:
        return row
    if row.status != "open":
        raise HoldClosed(f"hold {hold_id} is already {row.status}", field="hold_id")
    await session.exec(
        update(HoldRecord).where(col(HoldRecord.id) == hold_id).values(
            status="released", close_key=key, closed_at=now)
    )
    await _after_movement(session, wallet, policy, balance_after=wallet.balance,
                          held_after=wallet.held - row.amount,
                          emergency_after=wallet.emergency_active, top_up=False, at=now)
    return Hold.of(await _hold(session, hold_id))


async def debit(
    session: AsyncSession,
    *,
    account_id: str,
    net: Decimal,
    vat: Decimal,
    gross: Decimal,
    service: str,
    key: str,
    description: str | None = None,
    energy_wh: int | None = None,
    recovery: Decimal | None = None,
    at: datetime | None = None,
) -> Debit:
    """Debit usage that had no hold (a meter interval, a base fee), and answer with the credit
    decision afterwards (whether supply must be cut). Nothing is debited in free mode. Locks the
    wallet."""
    check_key(key)
    net, vat, gross = _bill(net, vat, gross)
    _service(service)
    now = _now(at)
    wallet = await lock_wallet(session, account_id)
    policy = await get_policy(session, account_id)
    site = await _site(session, wallet.site_id)
    entry = None
    balance_after = wallet.balance
    if policy.mode is not Mode.FREE:
        existing = await find_entry(session, key)
        surcharge = (Decimal(0) if existing is not None
                     else await _surcharge(session, policy, account_id, energy_wh, recovery))
        if existing is not None:
            entry = existing
        elif gross + surcharge > 0:
            entry = await post(
                session, key=key, site_id=wallet.site_id, currency=wallet.currency,
                kind="debit", account_id=account_id, description=description or service,
                legs=_usage_legs(wallet.site_id, account_id, service, net, vat, gross, surcharge),
                at=now,
            )
            balance_after = wallet.balance + entry.amount_on(f"wallet:{account_id}")
            await _after_movement(session, wallet, policy, balance_after=balance_after,
                                  held_after=wallet.held,
                                  emergency_after=wallet.emergency_active, top_up=False, at=now)
    state = WalletState(balance_after, wallet.held, wallet.emergency_active)
    decision = decide(policy, state, now, calendar_of(site), supply_on=not wallet.supply_cut)
    return Debit(entry, decision)


# -- top-ups -------------------------------------------------------------------------------------


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
    at: datetime | None = None,
) -> TopUp:
    """Credit money received from `source` (cash, vouchers outstanding, a payment provider).

    Emergency credit in use is repaid first (the wallet was below zero: the top-up fills it);
    debt recovery takes the policy's percentage of the rest, within the weekly cap; an account in
    free mode goes back to prepaid billing. Top-ups re-arm low-balance alerts. Locks the wallet.
    """
    check_key(key)
    amount = money(amount, "amount", positive=True)
    now = _now(at)
    wallet = await lock_wallet(session, account_id)
    existing = await find_entry(session, key)
    if existing is not None:
        wallet_leg = existing.amount_on(f"wallet:{account_id}")
        if wallet_leg == 0 or existing.amount_on(source.id) != -amount:
            raise IdempotencyConflict(f"key {key!r} was a different movement", field="key")
        recovered = existing.amount_on(f"debt:{account_id}")
        return TopUp(existing, wallet_leg, recovered, wallet.balance)
    policy = await get_policy(session, account_id)
    site = await _site(session, wallet.site_id)
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
        await set_policy(session, account_id, _replace_mode(policy, Mode.PREPAID),
                         staff="topup", at=now)
        policy = _replace_mode(policy, Mode.PREPAID)
    await _after_movement(session, wallet, policy, balance_after=balance_after,
                          held_after=wallet.held, emergency_after=emergency_after,
                          top_up=True, at=now)
    return TopUp(entry, credited, recovered, balance_after)


def _replace_mode(policy: CreditPolicy, mode: Mode) -> CreditPolicy:
    document = policy.to_document()
    document["mode"] = mode.value
    return CreditPolicy.from_document(document)


def cash_topup_key(site_id: str, receipt: str) -> str:
    return f"cash:{site_id}:{receipt}"


async def top_up_cash(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    receipt: str,
    staff: str | None,
    at: datetime | None = None,
) -> TopUp:
    """Cash paid at a desk, with its receipt number; the same receipt twice tops up once (and a
    receipt already used for another account is refused). Locks the wallet."""
    if not isinstance(receipt, str) or not receipt.strip() or len(receipt) > 120:
        raise InvalidInput("a receipt number (1-120 characters) is required", field="reference")
    _, site = await account_site(session, account_id)
    return await top_up(
        session, account_id=account_id, amount=amount, key=cash_topup_key(site.id, receipt),
        source=site_account(site.id, LedgerKind.CASH), kind="topup", reference=receipt,
        staff=staff, description=f"cash top-up, receipt {receipt}", at=at,
    )


# -- corrections, debt and emergency credit ------------------------------------------------------


async def correct(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    reason: str,
    staff: str,
    key: str,
    at: datetime | None = None,
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
    now = _now(at)
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
        await _after_movement(session, wallet, policy, balance_after=wallet.balance + amount,
                              held_after=wallet.held, emergency_after=wallet.emergency_active,
                              top_up=False, at=now)
    return entry


async def record_debt(
    session: AsyncSession,
    *,
    account_id: str,
    amount: Decimal,
    reason: str,
    staff: str,
    key: str,
    at: datetime | None = None,
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
        at=_now(at),
    )


async def debt_outstanding(session: AsyncSession, account_id: str) -> Decimal:
    return -await ledger_balance(session, f"debt:{account_id}")


async def recover_debt_daily(
    session: AsyncSession, account_id: str, *, day: date, at: datetime | None = None
) -> Entry | None:
    """The policy's daily rate (Tagesrate) for `day`, moved from the wallet to the debt account,
    at most once per day and never more than is outstanding. Locks the wallet."""
    now = _now(at)
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
    await _after_movement(session, wallet, policy, balance_after=wallet.balance - amount,
                          held_after=wallet.held, emergency_after=wallet.emergency_active,
                          top_up=False, at=now)
    return entry


async def activate_emergency_credit(
    session: AsyncSession, account_id: str, *, at: datetime | None = None
) -> WalletView:
    """The resident switches on the emergency credit of their policy (a second call changes
    nothing). Refused when the policy grants none or the account is not prepaid. Locks the
    wallet."""
    now = _now(at)
    wallet = await lock_wallet(session, account_id)
    policy = await get_policy(session, account_id)
    if policy.emergency_credit <= 0:
        raise CreditRefused("this account's policy grants no emergency credit",
                            reason="no_emergency_credit")
    if policy.mode is not Mode.PREPAID:
        raise CreditRefused(f"emergency credit is for prepaid accounts (mode {policy.mode})",
                            reason=policy.mode.value)
    if not wallet.emergency_active:
        await session.exec(
            update(Wallet).where(col(Wallet.account_id) == account_id)
            .values(emergency_active=True, emergency_activated_at=now)
        )
        await _emit(session, account_id, [Alert(AlertKind.EMERGENCY_CREDIT_STARTED)], now, {
            "currency": wallet.currency, "balance": str(wallet.balance),
            "credit": str(policy.emergency_credit),
            "available": str(wallet.balance - wallet.held + policy.emergency_credit),
        })
    return await wallet_view(session, account_id, now)


async def note_supply(
    session: AsyncSession, account_id: str, *, cut: bool, at: datetime | None = None
) -> bool:
    """Record that metered supply was cut (or restored); alerts the resident on a change.
    Returns whether the state changed. Locks the wallet."""
    now = _now(at)
    wallet = await lock_wallet(session, account_id)
    if wallet.supply_cut == cut:
        return False
    await session.exec(
        update(Wallet).where(col(Wallet.account_id) == account_id).values(supply_cut=cut)
    )
    kind = AlertKind.SUPPLY_CUT if cut else AlertKind.SUPPLY_RESTORED
    await _emit(session, account_id, [Alert(kind)], now, {
        "currency": wallet.currency, "balance": str(wallet.balance),
    })
    return True


# -- reading -------------------------------------------------------------------------------------


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
        wallet = WalletSnapshot(*(mapping[_WALLET.c[name]] for name in _SNAPSHOT_COLUMNS))
        return wallet, _policy_of(mapping[_POLICY.c.document]), await _site(session,
                                                                              wallet.site_id)
    account, site = await account_site(session, account_id)
    empty = Wallet(account_id=account_id, site_id=account.site_id, currency=site.currency,
                   balance=Decimal("0.0000"), held=Decimal("0.0000"))
    return WalletSnapshot.of(empty), await get_policy(session, account_id), site


async def credit_decision(
    session: AsyncSession,
    account_id: str,
    at: datetime | None = None,
    *,
    needed: Decimal = Decimal(0),
    supply_on: bool | None = None,
) -> CreditDecision:
    """The pure credit rule (`wallet.credit.decide`) over the account's stored state: may it
    start, must running use stop or supply be cut, and why. `supply_on` defaults to the supply
    state last noted. No lock."""
    now = _now(at)
    wallet, policy, site = await _read(session, account_id)
    on = (not wallet.supply_cut) if supply_on is None else supply_on
    return decide(policy, _state(wallet), now, calendar_of(site), needed=needed, supply_on=on)


async def wallet_view(
    session: AsyncSession, account_id: str, at: datetime | None = None
) -> WalletView:
    """Balance, open holds, credit allowed now and available money. No lock."""
    now = _now(at)
    wallet, policy, site = await _read(session, account_id)
    decision = decide(policy, _state(wallet), now, calendar_of(site))
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


__all__ = [
    "SERVICES",
    "Debit",
    "Hold",
    "LedgerLine",
    "LedgerPage",
    "PolicyInvalid",
    "Reason",
    "Settlement",
    "TopUp",
    "WalletView",
    "account_of",
    "activate_emergency_credit",
    "adjust_hold",
    "cash_topup_key",
    "correct",
    "credit_decision",
    "debit",
    "debt_outstanding",
    "get_policy",
    "note_supply",
    "open_hold",
    "record_debt",
    "record_opening_balance",
    "recover_debt_daily",
    "release_hold",
    "set_policy",
    "settle_hold",
    "top_up",
    "top_up_cash",
    "wallet_view",
]


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
    wallet = await lock_wallet(session, account_id)
    # Checked under the lock: a concurrent import of the same account has committed by now.
    if await find_entry(session, key) is not None:
        return
    now = _now(at)
    await post(
        session, key=key, site_id=site.id, currency=site.currency, kind="opening",
        account_id=account_id, description="opening balance",
        legs=[(wallet_account(site.id, account_id), amount),
              (site_account(site.id, LedgerKind.OPENING), -amount)],
        at=now,
    )
    policy = await get_policy(session, account_id)
    await _after_movement(session, wallet, policy, balance_after=wallet.balance + amount,
                          held_after=wallet.held, emergency_after=wallet.emergency_active,
                          top_up=amount > 0, at=now)
