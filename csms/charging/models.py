"""Tables of charging billing: one session per OCPP transaction, its usage points, per-station
charging settings.

A session is keyed by the OCPP transaction row (`ocpp_transaction.id`, which is also the 1.6
transactionId the server hands out: a database sequence, so unique across nodes). Its points
are what the station reported, each once (unique per source message and index), so the bill
is a function of the set of messages received, never of their order or repetition.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from column_types import Money, UTCDateTime


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _money() -> Any:
    return Field(default=None, sa_column=Column(Money(), nullable=True))


class SessionStatus:
    ACTIVE = "active"
    # The station ended it, but messages before the end are still missing (2.0.1 seqNo gap).
    ENDING = "ending"
    COMPLETED = "completed"


class ChargingSession(SQLModel, table=True):
    __tablename__ = "charging_session"
    __table_args__ = (
        UniqueConstraint("station_id", "station_tx_id", name="uq_charging_session_station_tx"),
        Index("ix_charging_session_site_started", "site_id", "started_at"),
        Index("ix_charging_session_account_started", "account_id", "started_at"),
        Index("ix_charging_session_status", "status"),
    )

    id: int = Field(
        sa_column=Column(
            Integer(), ForeignKey("ocpp_transaction.id"), primary_key=True, autoincrement=False
        )
    )
    station_id: str = Field(max_length=64)
    station_tx_id: str = Field(max_length=64)
    site_id: str = Field(max_length=64)
    protocol: str = Field(max_length=16)
    evse_id: int | None = None
    connector_id: int | None = None
    id_tag: str | None = Field(default=None, max_length=64)
    account_id: str | None = Field(default=None, max_length=64)
    # The badge's standing when the session started: Accepted, Blocked, Invalid, NoCredit ...
    auth_status: str | None = Field(default=None, max_length=24)
    # The tariff as it was when the session started (a later edit does not reprice it).
    tariff_id: str = Field(max_length=64)
    tariff: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    currency: str = Field(max_length=3)
    status: str = Field(default=SessionStatus.ACTIVE, max_length=12)
    started_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    # Arrival of the first message and of the latest one (for the silence timeout).
    received_at: datetime | None = _ts()
    last_message_at: datetime | None = _ts()
    meter_start_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    meter_last_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    energy_wh: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    duration_s: int = 0
    idle_s: int = 0
    stop_reason: str | None = Field(default=None, max_length=32)
    # 2.0.1: seqNo of the Started and the Ended message.
    start_seq: int | None = None
    end_seq: int | None = None
    ended_received_at: datetime | None = _ts()
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
    billed_at: datetime | None = _ts()
    # Stop asked by the server (credit ran out, or staff): when and how often.
    stop_requested_at: datetime | None = _ts()
    stop_requests: int = 0
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ChargingPoint(SQLModel, table=True):
    """One usage point: a register reading, a charging-state change, or both.

    `at` is the station's timestamp, or the arrival time when the station's cannot be right
    (`implausible`). `source` is the message (stable across retransmissions), `idx` the
    position in it.
    """

    __tablename__ = "charging_point"
    __table_args__ = (
        UniqueConstraint("session_id", "source", "idx", name="uq_charging_point_source"),
        Index("ix_charging_point_session_at", "session_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="charging_session.id")
    source: str = Field(max_length=200)
    idx: int = 0
    kind: str = Field(max_length=8)  # start | meter | state | stop
    at: datetime = _ts(nullable=False)
    station_at: datetime | None = _ts()
    received_at: datetime = _ts(nullable=False)
    implausible: bool = False
    register_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    state: str | None = Field(default=None, max_length=24)
    seq_no: int | None = None


class ChargingStationConfig(SQLModel, table=True):
    """How billing treats one station; the owner sets it (defaults apply without a row)."""

    __tablename__ = "charging_station_config"

    station_id: str = Field(
        sa_column=Column(
            String(64), ForeignKey("station.id", ondelete="CASCADE"), primary_key=True
        )
    )
    # 1.6 stations with the Open Charge Alliance California Pricing messages (DataTransfer).
    california_pricing: bool = False
    # After the station reports a reboot, wait this long for its own stop before closing the
    # session from the last meter value (0: close at once).
    reboot_close_after_s: int = 0
    # A session whose station sends nothing for this long is closed from its last meter value
    # (None: never by silence).
    silent_close_after_s: int | None = None
