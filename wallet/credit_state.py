"""Switches of a wallet's credit state that the resident is alerted to: emergency credit
activated, metered supply cut or restored. Each locks the wallet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alert_outbox import raise_alerts
from wallet.alerts import Alert, AlertKind
from wallet.credit import (
    Mode,
)
from wallet.errors import (
    CreditRefused,
)
from wallet.ledger import (
    lock_wallet,
)
from wallet.models import (
    Wallet,
)
from wallet.movement import get_policy, instant
from wallet.views import WalletView, wallet_view


async def activate_emergency_credit(
    session: AsyncSession, account_id: str, *, at: datetime
) -> WalletView:
    """The resident switches on the emergency credit of their policy (a second call changes
    nothing). Refused when the policy grants none or the account is not prepaid. Locks the
    wallet."""
    now = instant(at)
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
        await raise_alerts(session, account_id, [Alert(AlertKind.EMERGENCY_CREDIT_STARTED)], now, {
            "currency": wallet.currency, "balance": str(wallet.balance),
            "credit": str(policy.emergency_credit),
            "available": str(wallet.balance - wallet.held + policy.emergency_credit),
        })
    return await wallet_view(session, account_id, now)


async def note_supply(
    session: AsyncSession, account_id: str, *, cut: bool, at: datetime
) -> bool:
    """Record that metered supply was cut (or restored); alerts the resident on a change.
    Returns whether the state changed. Locks the wallet."""
    now = instant(at)
    wallet = await lock_wallet(session, account_id)
    if wallet.supply_cut == cut:
        return False
    await session.exec(
        update(Wallet).where(col(Wallet.account_id) == account_id).values(supply_cut=cut)
    )
    kind = AlertKind.SUPPLY_CUT if cut else AlertKind.SUPPLY_RESTORED
    await raise_alerts(session, account_id, [Alert(kind)], now, {
        "currency": wallet.currency, "balance": str(wallet.balance),
    })
    return True
