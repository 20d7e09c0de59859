"""Tables the wallet owns: household accounts, the double-entry ledger, holds, vouchers, credit
policies and the alert outbox.

Ledger sign convention: a posting's `amount` is positive for a credit and negative for a debit,
and every journal entry's postings sum to exactly zero. Accounts that hold money *for* someone
(a household wallet, revenue, VAT payable, vouchers outstanding) therefore have positive sums,
and so a wallet's balance is literally the sum of its postings. Debit-natured accounts (cash at
the desk, debt receivable) carry negative sums.

Journal entries and postings are append-only: triggers in the migration refuse UPDATE and DELETE
on both databases, and on PostgreSQL a deferred constraint trigger re-checks at commit that every
entry's postings sum to zero.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
)
from sqlmodel import Field, SQLModel

from column_types import Money, UTCDateTime


class Account(SQLModel, table=True):
    """A household or business.

    `ref` is the account's id as its site knows it (the site file's `id`, what the API paths,
    the CLI and the pages show); it is unique per site only, as every installer calls a flat
    `a-01`. `id` is the internal key every other table refers to: opaque, unique across the
    installation. A new account gets `id = ref` when no account anywhere has that id yet,
    otherwise `f"{site_id}:{ref}"` (or, should that be taken or too long too, `acct-` and a
    random hex); `wallet.accounts.new_account_id` chooses it. Find an account through
    `wallet.accounts.account_by_ref(session, site_id, ref)`, never by `id` from user input.
    """

    __tablename__ = "account"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "building_id"], ["building.site_id", "building.id"]),
        # A unique index rather than a constraint: SQLite adds it without rebuilding the table,
        # which every wallet table refers to.
        Index("uq_account_site_ref", "site_id", "ref", unique=True),
    )

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    ref: str = Field(max_length=64)
    name: str
    building_id: str | None = None
    unit: str | None = None
    email: str | None = None
    language: str = Field(default="de", max_length=2)
    # The household's own webhook for its alerts (set on the resident's alerts page), and the
    # key its deliveries are signed with (shown to the resident, who checks the signatures).
    webhook_url: str | None = Field(default=None, max_length=500)
    webhook_secret: str | None = Field(default=None, max_length=64)
    # As declared in the site file; applied once as a ledger entry, kept here for export.
    opening_balance: Decimal | None = Field(default=None, sa_column=Column(Money()))


class LedgerAccount(SQLModel, table=True):
    """One account of the chart: a household's wallet or debt, or a site's revenue per service,
    VAT payable, cash, vouchers outstanding, ... (`id` is derived, e.g. `wallet:a-01`)."""

    __tablename__ = "ledger_account"

    id: str = Field(primary_key=True, max_length=160)
    site_id: str = Field(foreign_key="site.id", index=True)
    kind: str = Field(max_length=24)
    account_id: str | None = Field(default=None, foreign_key="account.id", index=True)
    service: str | None = Field(default=None, max_length=32)
    currency: str = Field(max_length=3)


class JournalEntry(SQLModel, table=True):
    """A balanced movement; `key` is the idempotency key derived from its cause."""

    __tablename__ = "journal_entry"

    id: str = Field(primary_key=True, max_length=32)
    key: str = Field(max_length=200, unique=True)
    site_id: str = Field(foreign_key="site.id", index=True)
    # The household the movement concerns (None for site-only entries such as voucher batches).
    account_id: str | None = Field(default=None, foreign_key="account.id", index=True)
    kind: str = Field(max_length=24)
    description: str | None = None
    reference: str | None = Field(default=None, max_length=200)
    reason: str | None = None
    staff: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Posting(SQLModel, table=True):
    """One leg of a journal entry (positive = credit, negative = debit)."""

    __tablename__ = "posting"
    __table_args__ = (Index("ix_posting_ledger_account_id_id", "ledger_account_id", "id"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                       primary_key=True, autoincrement=True)
    )
    entry_id: str = Field(foreign_key="journal_entry.id", index=True, max_length=32)
    ledger_account_id: str = Field(foreign_key="ledger_account.id", max_length=160)
    amount: Decimal = Field(sa_column=Column(Money(), nullable=False))


class Wallet(SQLModel, table=True):
    """Per-household state, and the row every wallet movement locks (`SELECT ... FOR UPDATE`).

    `balance` caches the sum of the wallet ledger account's postings and `held` the sum of open
    holds; both change only inside the same transaction as the rows they summarise, under the
    row lock, so available credit is one row read.
    """

    __tablename__ = "wallet"

    account_id: str = Field(primary_key=True, foreign_key="account.id", max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    currency: str = Field(max_length=3)
    balance: Decimal = Field(sa_column=Column(Money(), nullable=False))
    held: Decimal = Field(sa_column=Column(Money(), nullable=False))
    emergency_active: bool = False
    emergency_activated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    redeem_failures: int = 0
    redeem_locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # Low-balance thresholds (decimal strings) already alerted since the last top-up.
    alerts_fired: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exhausted_alerted: bool = False
    supply_cut: bool = False


class HoldRecord(SQLModel, table=True):
    """Money reserved for a running usage (a charging session, a laundry cycle)."""

    __tablename__ = "wallet_hold"

    id: str = Field(primary_key=True, max_length=32)
    key: str = Field(max_length=200, unique=True)
    account_id: str = Field(foreign_key="account.id", index=True, max_length=64)
    amount: Decimal = Field(sa_column=Column(Money(), nullable=False))
    status: str = Field(max_length=10)  # open | settled | released
    service: str = Field(max_length=32)
    reference: str | None = Field(default=None, max_length=200)
    # Opened while the account's mode was `free`: the usage is recorded but never debited.
    free: bool = False
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    close_key: str | None = Field(default=None, max_length=200, unique=True)
    entry_id: str | None = Field(default=None, foreign_key="journal_entry.id", max_length=32)
    net: Decimal | None = Field(default=None, sa_column=Column(Money()))
    vat: Decimal | None = Field(default=None, sa_column=Column(Money()))
    gross: Decimal | None = Field(default=None, sa_column=Column(Money()))
    energy_wh: int | None = None


class HoldAdjustment(SQLModel, table=True):
    """Each raise or lowering of a hold, keyed so that a replayed adjustment is not re-applied."""

    __tablename__ = "wallet_hold_adjustment"

    key: str = Field(primary_key=True, max_length=200)
    hold_id: str = Field(foreign_key="wallet_hold.id", index=True, max_length=32)
    amount: Decimal = Field(sa_column=Column(Money(), nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class VoucherBatch(SQLModel, table=True):
    __tablename__ = "voucher_batch"

    id: str = Field(primary_key=True, max_length=32)
    key: str = Field(max_length=200, unique=True)
    site_id: str = Field(foreign_key="site.id", index=True)
    value: Decimal = Field(sa_column=Column(Money(), nullable=False))
    count: int
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str | None = Field(default=None, max_length=64)


class VoucherCode(SQLModel, table=True):
    """A code is stored only as its SHA-256: a copy of the database redeems nothing."""

    __tablename__ = "voucher_code"

    code_sha256: str = Field(primary_key=True, max_length=64)
    batch_id: str = Field(foreign_key="voucher_batch.id", index=True, max_length=32)
    last4: str = Field(max_length=4)
    redeemed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    redeemed_by: str | None = Field(default=None, foreign_key="account.id", max_length=64)
    entry_id: str | None = Field(default=None, foreign_key="journal_entry.id", max_length=32)


class RedemptionFailure(SQLModel, table=True):
    __tablename__ = "voucher_redemption_failure"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True, max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    reason: str = Field(max_length=32)


class CreditPolicyRecord(SQLModel, table=True):
    """An account's credit policy as its JSON document (parsed by `wallet.credit`)."""

    __tablename__ = "credit_policy"

    account_id: str = Field(primary_key=True, foreign_key="account.id", max_length=64)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_by: str | None = Field(default=None, max_length=64)


class AlertOutbox(SQLModel, table=True):
    """Alerts are written in the movement's transaction and delivered after commit, so a rolled
    back movement never alerts and a committed one is never forgotten.

    An alert is about a household (`account_id`; `site_id` is then the account's site) or, for
    operators only, about a site's device that belongs to no household (`account_id` None,
    `site_id` set, audience "staff"): a machine's relay that cannot be reached, lost readings.
    """

    __tablename__ = "wallet_alert"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str | None = Field(default=None, foreign_key="account.id", index=True,
                                   max_length=64)
    site_id: str | None = Field(default=None, foreign_key="site.id", index=True, max_length=64)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), index=True))
    attempts: int = 0
    last_error: str | None = None
    # A deliverer (any process) took it until then; after that another may (it crashed).
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # Who reads it: "account" (the household: e-mail and webhook) or "staff" (the operators:
    # webhook only). Written by `wallet.alert_outbox.raise_alert`.
    audience: str = Field(default="account", max_length=8,
                          sa_column_kwargs={"server_default": "account"})
