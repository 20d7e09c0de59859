"""What every wallet movement shares: the site's calendar (cached per session), the account's
credit policy, the service names, and writing the wallet row's new state and alerts after a
movement.

Internal to the wallet package; other packages call `wallet.service`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alert_outbox import raise_alerts
from wallet.alerts import Alert, AlertState, evaluate
from wallet.credit import (
    CreditPolicy,
    Mode,
    SiteCalendar,
    WalletState,
    merge_policy,
)
from wallet.errors import (
    InvalidInput,
)
from wallet.ledger import (
    SiteInfo,
    WalletSnapshot,
    account_site,
    site_info,
)
from wallet.models import (
    CreditPolicyRecord,
    HoldRecord,
    Wallet,
)

CENT = Decimal("0.01")
# Revenue accounts are per service; these are the ones the system books, others may be added.
SERVICES = ("charging", "laundry", "electricity", "base_fee")
_SERVICE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Entry kinds whose debt recovery counts against the weekly cap of top-up recovery.
TOPUP_KINDS = ("topup", "voucher", "payment")


async def site_of(session: AsyncSession, site_id: str) -> SiteInfo:
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
    at: datetime,
) -> CreditPolicy:
    """Replace the account's credit policy (a document is validated; every problem is reported
    with its path as `PolicyInvalid`). Flushes, does not commit."""
    parsed = policy if isinstance(policy, CreditPolicy) else CreditPolicy.from_document(policy)
    await account_site(session, account_id)
    record = await session.get(CreditPolicyRecord, account_id)
    now = instant(at)
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


async def patch_policy(
    session: AsyncSession,
    account_id: str,
    patch: dict[str, Any],
    *,
    staff: str | None = None,
    at: datetime,
) -> CreditPolicy:
    """Change only the fields `patch` names (`wallet.credit.merge_policy`); the result is
    validated whole, every problem reported with its path. Flushes, does not commit."""
    current = await get_policy(session, account_id)
    return await set_policy(session, account_id, merge_policy(current, patch), staff=staff,
                            at=at)


def state_of(wallet: WalletSnapshot) -> WalletState:
    return WalletState(wallet.balance, wallet.held, wallet.emergency_active)


def check_service(service: str) -> str:
    if not isinstance(service, str) or not _SERVICE_PATTERN.match(service):
        raise InvalidInput(f"not a service name: {service!r} (e.g. {', '.join(SERVICES)})",
                           field="service")
    return service


def instant(at: datetime) -> datetime:
    """The caller's instant, checked: the wallet never reads the wall clock itself."""
    if at.tzinfo is None:
        raise InvalidInput("instant must be timezone-aware", field="at")
    return at


@dataclass(frozen=True, slots=True)
class Changes:
    values: dict[str, Any]
    alerts: tuple[Alert, ...]
    facts: dict[str, Any]


def changes_after(
    wallet: WalletSnapshot,
    policy: CreditPolicy,
    *,
    balance_after: Decimal,
    held_after: Decimal,
    emergency_after: bool,
    top_up: bool,
) -> Changes:
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
    return Changes(values, evaluation.alerts, facts)


async def after_movement(
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
    """Write `changes_after` for a movement whose ledger part (if any) is already posted."""
    changes = changes_after(wallet, policy, balance_after=balance_after, held_after=held_after,
                            emergency_after=emergency_after, top_up=top_up)
    if changes.values:
        await session.exec(
            update(Wallet).where(col(Wallet.account_id) == wallet.account_id)
            .values(**changes.values).execution_options(synchronize_session=False)
        )
    await raise_alerts(session, wallet.account_id, changes.alerts, at, changes.facts)


WALLET_TABLE = Wallet.__table__  # type: ignore[attr-defined]
HOLD_TABLE = HoldRecord.__table__  # type: ignore[attr-defined]
POLICY_TABLE = CreditPolicyRecord.__table__  # type: ignore[attr-defined]


def policy_of(document: Any) -> CreditPolicy:
    return CreditPolicy() if document is None else CreditPolicy.from_document(document)


SNAPSHOT_COLUMNS = (
    "account_id", "site_id", "currency", "balance", "held", "emergency_active",
    "redeem_failures", "redeem_locked_until", "alerts_fired", "exhausted_alerted", "supply_cut",
)


def with_mode(policy: CreditPolicy, mode: Mode) -> CreditPolicy:
    document = policy.to_document()
    document["mode"] = mode.value
    return CreditPolicy.from_document(document)
