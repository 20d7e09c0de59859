"""Holds and usage debits: open, adjust, settle and release a hold on a household's wallet, and
debit usage that had no hold (a meter interval, a base fee). Each locks the wallet first."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alert_outbox import raise_alerts
from wallet.credit import (
    CreditDecision,
    CreditPolicy,
    Mode,
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
    WalletSnapshot,
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
    wallet_account,
)
from wallet.models import (
    HoldAdjustment,
    HoldRecord,
    Wallet,
)
from wallet.movement import (
    CENT,
    SNAPSHOT_COLUMNS,
    after_movement,
    calendar_of,
    changes_after,
    check_service,
    get_policy,
    instant,
    policy_of,
    site_of,
    state_of,
)
from wallet.movement import (
    HOLD_TABLE as _HOLD,
)
from wallet.movement import (
    POLICY_TABLE as _POLICY,
)
from wallet.movement import (
    WALLET_TABLE as _WALLET,
)


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
class Settlement:
    hold: Hold
    # None when nothing was debited (free mode, or a zero bill).
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class Debit:
    entry: Entry | None
    decision: CreditDecision


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
        wallet = WalletSnapshot(*(mapping[_WALLET.c[name]] for name in SNAPSHOT_COLUMNS))
        hold = None
        if hold_id is not None:
            hold = Hold.of({column.name: mapping[column] for column in _HOLD.c})
        return wallet, policy_of(mapping[_POLICY.c.document]), hold
    if account_id is None:
        raise NotFound(f"unknown hold {hold_id!r}", field="hold_id")
    snapshot = await lock_wallet(session, account_id)  # first movement: creates the row
    return snapshot, await get_policy(session, account_id), None


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
    at: datetime,
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
    check_service(service)
    now = instant(at)
    wallet, policy, _ = await _lock(session, account_id=account_id)
    site = await site_of(session, wallet.site_id)
    decision = decide(policy, state_of(wallet), now, calendar_of(site))
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
    await after_movement(session, wallet, policy, balance_after=wallet.balance,
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
    at: datetime,
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
    now = instant(at)
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
        site = await site_of(session, wallet.site_id)
        decision = decide(policy, state_of(wallet), now, calendar_of(site), needed=delta)
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
    await after_movement(session, wallet, policy, balance_after=wallet.balance,
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
    at: datetime,
) -> Settlement:
    """Close a hold with the final bill: one entry debits the wallet `gross` and credits the
    service's revenue `net` and VAT payable `vat`, plus debt recovery moved from the wallet to
    the debt account (the tariff's `recovery`, or the policy's surcharge per kWh of
    `energy_wh`). The bill may exceed the hold. In free mode the usage is recorded on the hold
    and nothing is debited. Locks the wallet."""
    check_key(key)
    net, vat, gross = _bill(net, vat, gross)
    check_service(service)
    now = instant(at)
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
    changes = changes_after(wallet, policy, balance_after=wallet.balance - debited,
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
    await raise_alerts(session, row.account_id, changes.alerts, now, changes.facts)
    settled = Hold(row.id, row.key, row.account_id, row.amount, "settled", row.service,
                   row.reference, row.free, row.opened_at, now, entry.id if entry else None,
                   net, vat, gross, key)
    return Settlement(settled, entry)


async def release_hold(
    session: AsyncSession, hold_id: str, *, key: str, at: datetime
) -> Hold:
    """Give a hold's money back without a bill (the usage never happened). Locks the wallet."""
    check_key(key)
    now = instant(at)
    row, wallet, policy = await _locked_hold(session, hold_id)
    if row.close_key == key:
        return row
    if row.status != "open":
        raise HoldClosed(f"hold {hold_id} is already {row.status}", field="hold_id")
    await session.exec(
        update(HoldRecord).where(col(HoldRecord.id) == hold_id).values(
            status="released", close_key=key, closed_at=now)
    )
    await after_movement(session, wallet, policy, balance_after=wallet.balance,
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
    at: datetime,
) -> Debit:
    """Debit usage that had no hold (a meter interval, a base fee), and answer with the credit
    decision afterwards (whether supply must be cut). Nothing is debited in free mode. Locks the
    wallet."""
    check_key(key)
    net, vat, gross = _bill(net, vat, gross)
    check_service(service)
    now = instant(at)
    wallet = await lock_wallet(session, account_id)
    policy = await get_policy(session, account_id)
    site = await site_of(session, wallet.site_id)
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
            await after_movement(session, wallet, policy, balance_after=balance_after,
                                 held_after=wallet.held,
                                 emergency_after=wallet.emergency_active, top_up=False, at=now)
    state = WalletState(balance_after, wallet.held, wallet.emergency_active)
    decision = decide(policy, state, now, calendar_of(site), supply_on=not wallet.supply_cut)
    return Debit(entry, decision)
