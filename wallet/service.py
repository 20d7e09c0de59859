"""Wallet operations other packages call, each taking the caller's `AsyncSession` first.

The public face of the wallet: the operations live in `wallet.holds` (holds and usage debits),
`wallet.topups` (top-ups, cash, corrections, opening balance), `wallet.debt` (arrears),
`wallet.credit_state` (emergency credit, supply), `wallet.views` (reading),
`wallet.alert_outbox` (`raise_alert`, the one way an alert is written) and
`wallet.movement` (what every movement shares: policy, site calendar, state after a movement).
Import them from here.

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

Time: every function that decides or records by time takes `at`, the instant the caller's clock
says (timezone-aware, required); the wallet never reads the wall clock itself.
"""

from __future__ import annotations

from wallet.alert_outbox import Audience, raise_alert
from wallet.alerts import DeviceFault
from wallet.credit import PolicyInvalid, Reason
from wallet.credit_state import activate_emergency_credit, note_supply
from wallet.debt import debt_outstanding, record_debt, recover_debt_daily
from wallet.holds import (
    Debit,
    Hold,
    Settlement,
    adjust_hold,
    debit,
    open_hold,
    release_hold,
    settle_hold,
)
from wallet.movement import SERVICES, calendar_of, get_policy, patch_policy, set_policy
from wallet.topups import (
    TopUp,
    cash_topup_key,
    correct,
    opening_key,
    record_opening_balance,
    top_up,
    top_up_cash,
)
from wallet.views import (
    LedgerLine,
    LedgerPage,
    WalletView,
    account_of,
    credit_decision,
    ledger_page,
    wallet_view,
)

__all__ = [
    "SERVICES",
    "Audience",
    "Debit",
    "DeviceFault",
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
    "calendar_of",
    "cash_topup_key",
    "correct",
    "credit_decision",
    "debit",
    "debt_outstanding",
    "get_policy",
    "ledger_page",
    "note_supply",
    "open_hold",
    "opening_key",
    "patch_policy",
    "raise_alert",
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
