"""Tables of OCPP charging: one session per OCPP transaction (what only OCPP knows of it),
and per-station charging settings.

The money side of a session (who pays, tariff, hold, live and final amounts, ledger entry,
flags) and its usage points are the paid use of `billing` (`billing.models.PaidUse`), linked
by `use_id`. A session is keyed by the OCPP transaction row (`ocpp_transaction.id`, which is
also the 1.6 transactionId the server hands out: a database sequence, so unique across nodes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from billing.models import UseStatus
from column_types import UTCDateTime


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


# A charging session's status is its paid use's.
SessionStatus = UseStatus


class ChargingSession(SQLModel, table=True):
    __tablename__ = "charging_session"
    __table_args__ = (
        UniqueConstraint("station_id", "station_tx_id", name="uq_charging_session_station_tx"),
        UniqueConstraint("use_id", name="uq_charging_session_use"),
    )

    id: int = Field(
        sa_column=Column(
            Integer(), ForeignKey("ocpp_transaction.id"), primary_key=True, autoincrement=False
        )
    )
    use_id: int = Field(
        sa_column=Column(
            Integer(), ForeignKey("billing_use.id", name="fk_charging_session_use"),
            nullable=False,
        )
    )
    station_id: str = Field(max_length=64)
    station_tx_id: str = Field(max_length=64)
    protocol: str = Field(max_length=16)
    evse_id: int | None = None
    connector_id: int | None = None
    # Arrival of the first message and of the latest one (for the silence timeout).
    received_at: datetime | None = _ts()
    last_message_at: datetime | None = _ts()
    meter_start_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    # 2.0.1: seqNo of the Started and the Ended message, and when the Ended arrived.
    start_seq: int | None = None
    end_seq: int | None = None
    ended_received_at: datetime | None = _ts()


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
