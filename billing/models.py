"""Tables of the paid-use flow: the money side of one use of a device, and its usage points.

A use is whatever a badge pays for at one device: a charging session, a laundry cycle, a meter
interval. It is keyed by (kind, device, the device's own reference for it), so the device's
messages, however often repeated, find the same use. Its points are what the device reported,
each once (unique per source message and index), so the bill is a function of the set of
messages received, never of their order or repetition. What only one protocol knows (OCPP
transaction ids, sequence numbers of the protocol's messages) lives with that protocol's adapter.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from column_types import Money, UTCDateTime


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _money() -> Any:
    return Field(default=None, sa_column=Column(Money(), nullable=True))


class UseStatus:
    ACTIVE = "active"
    # The device ended it, but usage reported before the end is still missing.
    ENDING = "ending"
    COMPLETED = "completed"


class PaidUse(SQLModel, table=True):
    __tablename__ = "billing_use"
    __table_args__ = (
        UniqueConstraint("kind", "device_id", "use_ref", name="uq_billing_use_device_ref"),
        Index("ix_billing_use_site_started", "site_id", "started_at"),
        Index("ix_billing_use_account_started", "account_id", "started_at"),
        Index("ix_billing_use_badge_status", "site_id", "badge_uid", "status"),
        Index("ix_billing_use_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The ledger's service name: charging | laundry | supply.
    kind: str = Field(max_length=16)
    device_id: str = Field(max_length=64)
    # The device's own name for this use (an OCPP transaction id, a cycle number).
    use_ref: str = Field(max_length=64)
    site_id: str = Field(max_length=64)
    # The idTag as the device sent it, and the badge it matched (canonical UID).
    id_tag: str | None = Field(default=None, max_length=64)
    badge_uid: str | None = Field(default=None, max_length=20)
    account_id: str | None = Field(default=None, max_length=64)
    # The badge's standing when the use started: Accepted, Blocked, Invalid, NoCredit ...
    auth_status: str | None = Field(default=None, max_length=24)
    # The tariff as it was when the use started (a later edit does not reprice it).
    tariff_id: str = Field(max_length=64)
    tariff: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    currency: str = Field(max_length=3)
    # The most the device delivers (W): energy beyond it is held for review, not billed.
    max_power_w: int | None = None
    status: str = Field(default=UseStatus.ACTIVE, max_length=12)
    started_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    # Why it ended: the device's reason, or how the flow closed it (closed_by_timeout ...).
    stop_reason: str | None = Field(default=None, max_length=32)
    energy_wh: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    duration_s: int = 0
    idle_s: int = 0
    # The last energy register reading (normalised), for displays that show it.
    last_register_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    # Money: the hold, the running cost, and the final bill.
    hold_id: str | None = Field(default=None, max_length=32)
    free: bool = False
    live_gross: Decimal | None = _money()
    net: Decimal | None = _money()
    vat: Decimal | None = _money()
    gross: Decimal | None = _money()
    lines: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    entry_id: str | None = Field(default=None, max_length=32)
    # A continuous use without a hold (a flat's supply over a month): what was debited so far,
    # reading by reading; the settlement debits only the rest of the final bill.
    charged_net: Decimal | None = _money()
    charged_gross: Decimal | None = _money()
    charged_recovery: Decimal | None = _money()
    # The energy those debits covered (the policy's debt surcharge per kWh follows it).
    charged_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    billed_at: datetime | None = _ts()
    # How many usage points are stored: tells a node whether its running rating of the use
    # has seen all of them (another node, or a rolled-back message, may have changed them).
    point_count: int = 0
    # Stop asked by the server (credit ran out, or staff): when and how often.
    stop_requested_at: datetime | None = _ts()
    stop_requests: int = 0
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class UsagePoint(SQLModel, table=True):
    """One usage point: a register reading, a state change (charging, idle), or both.

    `at` is the device's timestamp, or the arrival time when the device's cannot be right
    (`implausible`). `source` is the message (stable across retransmissions), `idx` the
    position in it; `seq_no` the device's message number where it numbers its messages.
    """

    __tablename__ = "billing_point"
    __table_args__ = (
        UniqueConstraint("use_id", "source", "idx", name="uq_billing_point_source"),
        Index("ix_billing_point_use_at", "use_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    use_id: int = Field(foreign_key="billing_use.id")
    source: str = Field(max_length=200)
    idx: int = 0
    kind: str = Field(max_length=8)  # start | meter | state | stop
    at: datetime = _ts(nullable=False)
    device_at: datetime | None = _ts()
    received_at: datetime = _ts(nullable=False)
    implausible: bool = False
    register_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    state: str | None = Field(default=None, max_length=24)
    seq_no: int | None = None
