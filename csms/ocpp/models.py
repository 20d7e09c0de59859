"""Tables the OCPP side owns: what stations told us, kept as received, and per-station switches.

The inventory row (`station`) says what a station should be; `ocpp_station` says what it is
(last boot, connection, local list version) and how the server behaves towards it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _wh() -> Any:
    # Lifetime energy registers can pass 2^31 Wh.
    return Field(default=None, sa_column=Column(BigInteger(), nullable=True))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


class OcppStation(SQLModel, table=True):
    """Live state and per-station behaviour switches, one row per station that ever connected."""

    __tablename__ = "ocpp_station"

    station_id: str = Field(
        sa_column=Column(
            String(64), ForeignKey("station.id", ondelete="CASCADE"), primary_key=True
        )
    )
    # Off: after a boot the server sends nothing of its own (no local list push, no reads).
    send_after_boot: bool = True
    boot_status: str | None = Field(default=None, max_length=16)
    boot_count: int = 0
    last_boot_at: datetime | None = _ts()
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    boot_payload: dict[str, Any] | None = _json()
    connected: bool = False
    protocol: str | None = Field(default=None, max_length=16)
    node_id: str | None = None
    transport: str | None = Field(default=None, max_length=8)
    security_level: int | None = None
    connected_at: datetime | None = _ts()
    disconnected_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()
    # The local authorisation list version the station last confirmed (None: never asked).
    local_list_version: int | None = None
    firmware_status: str | None = None
    # What the station is configured with (see csms.ocpp.configuration); None: never read.
    configuration: dict[str, Any] | None = _json()
    configuration_read_at: datetime | None = _ts()
    # The firmware version the configuration was read under: another one means read again.
    configuration_firmware: str | None = None


class ConnectorStatus(SQLModel, table=True):
    """Current status per EVSE/connector (1.6: evse_id == connector_id, 0 = whole station)."""

    __tablename__ = "ocpp_connector_status"

    station_id: str = Field(primary_key=True, max_length=64)
    evse_id: int = Field(primary_key=True)
    connector_id: int = Field(primary_key=True)
    status: str = Field(max_length=32)
    error_code: str | None = None
    info: str | None = None
    timestamp: datetime | None = _ts()
    received_at: datetime | None = _ts()


class StatusEvent(SQLModel, table=True):
    """Every StatusNotification, in arrival order."""

    __tablename__ = "ocpp_status_event"
    __table_args__ = (Index("ix_ocpp_status_event_station", "station_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=64)
    evse_id: int
    connector_id: int
    status: str = Field(max_length=32)
    error_code: str | None = None
    info: str | None = None
    timestamp: datetime | None = _ts()
    received_at: datetime | None = _ts()


class Transaction(SQLModel, table=True):
    """A charging transaction as the station reported it; `id` is the 1.6 transactionId.

    2.0.1 stations name their own transaction ids (`station_tx_id`); 1.6 ones get `str(id)`.
    Billing (a later issue) keys its idempotency on (station_id, station_tx_id).
    """

    __tablename__ = "ocpp_transaction"
    __table_args__ = (
        UniqueConstraint("station_id", "station_tx_id", name="uq_ocpp_transaction_station_tx"),
        Index("ix_ocpp_transaction_station_active", "station_id", "ended"),
    )

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=64)
    station_tx_id: str = Field(max_length=64)
    protocol: str = Field(max_length=16)
    evse_id: int | None = None
    connector_id: int | None = None
    id_tag: str | None = None
    reservation_id: int | None = None
    started_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    meter_start_wh: int | None = _wh()
    meter_stop_wh: int | None = _wh()
    last_meter_wh: int | None = _wh()
    charging_state: str | None = None
    stop_reason: str | None = None
    ended: bool = False
    # What the station sent to open it, for the later replay of duplicates.
    start_key: str | None = Field(default=None, max_length=200)
    received_at: datetime | None = _ts()


class TransactionMessage(SQLModel, table=True):
    """Every Start/StopTransaction and TransactionEvent, as received."""

    __tablename__ = "ocpp_transaction_message"
    __table_args__ = (Index("ix_ocpp_transaction_message_tx", "transaction_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(foreign_key="ocpp_transaction.id")
    action: str = Field(max_length=32)
    event_type: str | None = Field(default=None, max_length=16)
    seq_no: int | None = None
    trigger_reason: str | None = None
    timestamp: datetime | None = _ts()
    payload: dict[str, Any] = _json(nullable=False)
    received_at: datetime | None = _ts()


class MeterValue(SQLModel, table=True):
    """One sampled value, normalised: energy in integer Wh (`wh`), every value exact (`value`)."""

    __tablename__ = "ocpp_meter_value"
    __table_args__ = (
        Index("ix_ocpp_meter_value_station", "station_id", "id"),
        Index("ix_ocpp_meter_value_tx", "transaction_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=64)
    evse_id: int | None = None
    connector_id: int | None = None
    transaction_id: int | None = None
    timestamp: datetime | None = _ts()
    measurand: str = Field(max_length=64)
    phase: str | None = Field(default=None, max_length=8)
    location: str | None = Field(default=None, max_length=8)
    context: str | None = Field(default=None, max_length=32)
    unit: str | None = Field(default=None, max_length=16)
    # Exact decimal text in the base unit (Wh, W, varh, var, A, V, Hz, Celsius, Percent).
    value: str = Field(max_length=64)
    wh: int | None = _wh()


class SecurityEvent(SQLModel, table=True):
    """Security events: reported by stations, or noticed by the server (source 'csms')."""

    __tablename__ = "ocpp_security_event"
    __table_args__ = (Index("ix_ocpp_security_event_station", "station_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    # Not a foreign key: failed logins of unknown station ids are recorded too.
    station_id: str = Field(max_length=64)
    source: str = Field(max_length=8)
    type: str = Field(max_length=64)
    tech_info: str | None = None
    timestamp: datetime | None = _ts()
    received_at: datetime | None = _ts()


class StationMessage(SQLModel, table=True):
    """Other station messages kept as received: DataTransfer, firmware/diagnostics/log status,
    NotifyReport, NotifyEvent and the like."""

    __tablename__ = "ocpp_station_message"
    __table_args__ = (Index("ix_ocpp_station_message_station", "station_id", "action", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=64)
    action: str = Field(max_length=64)
    payload: dict[str, Any] = _json(nullable=False)
    received_at: datetime | None = _ts()


class StationCertificate(SQLModel, table=True):
    """A certificate the station CA issued to a station (csms.ocpp.station_certificates): what
    renewal looks at. `station_status` is the station's answer to CertificateSigned (None: not
    delivered); only an accepted certificate is the one the station uses."""

    __tablename__ = "ocpp_station_certificate"
    __table_args__ = (Index("ix_ocpp_station_certificate_station", "station_id", "not_after"),)

    id: int | None = Field(default=None, primary_key=True)
    # Not a foreign key, like the security events: the record outlives a deleted station.
    station_id: str = Field(max_length=64)
    # Hexadecimal, as `openssl x509 -serial` shows it (without leading zeros).
    serial: str = Field(max_length=64, unique=True)
    certificate_type: str = Field(max_length=32)
    not_after: datetime | None = _ts(nullable=False)
    issued_at: datetime | None = _ts(nullable=False)
    station_status: str | None = Field(default=None, max_length=16)
