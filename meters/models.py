"""Tables meters owns: apartment electricity meters, their readings, their standing (one row per
meter) and the exchanges installers record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


class Meter(SQLModel, table=True):
    __tablename__ = "meter"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "tariff_id"], ["tariff.site_id", "tariff.id"]),
    )

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    profile: str
    modbus: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    tariff_id: str
    disconnect: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    poll_s: int | None = None  # reading period; None: the default (60 s)


class MeterReading(SQLModel, table=True):
    """One reading as the meter gave it: its register (`energy_import_wh`, None when it held
    NaN), power, the plausibility flags and whether it may be billed. One per meter and instant,
    so a reading stored twice is stored once."""

    __tablename__ = "meter_reading"
    __table_args__ = (
        # Its index also serves every lookup by meter and time (latest first, paging).
        UniqueConstraint("meter_id", "at", name="uq_meter_reading_meter_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meter_id: str = Field(foreign_key="meter.id", max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # The register as read (what the meter's display shows); billing adds `offset_wh`.
    energy_import_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    # The sum of the recorded exchanges' offsets in force for this reading: the billed
    # register is energy_import_wh + offset_wh, continuous across meter exchanges.
    offset_wh: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    power_w: int | None = None
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    billable: bool
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MeterState(SQLModel, table=True):
    """A meter's standing: its last reading and last billable reading, the exchange offset,
    communication failures, the installer flags still open and its supply as last switched.
    Locked (`FOR UPDATE` on PostgreSQL) by every reading stored, so readings of one meter
    queue."""

    __tablename__ = "meter_state"

    meter_id: str = Field(foreign_key="meter.id", primary_key=True, max_length=64)
    last_reading_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_energy_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))  # as read
    last_billable_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # The billed register of the last billable reading (its register plus its offset).
    last_billable_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    offset_wh: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    # The latest recorded exchange: readings before it keep the offset before it.
    exchanged_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    failures: int = 0  # failed polls in a row
    backed_off_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_failure: str | None = Field(default=None, max_length=200)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    supply: str = Field(default="on", max_length=8)  # on | off | fault
    supply_changed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # When the household was told its supply will be cut (cleared once credit is back).
    warned_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class MeterExchange(SQLModel, table=True):
    """An installer replaced (or reset) a meter: the old one's final register and the new one's
    first. Billing continues across it (meters.readings.record_exchange)."""

    __tablename__ = "meter_exchange"
    __table_args__ = (Index("ix_meter_exchange_meter_at", "meter_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    meter_id: str = Field(foreign_key="meter.id", max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    old_final_wh: int = Field(sa_column=Column(BigInteger(), nullable=False))
    new_initial_wh: int = Field(sa_column=Column(BigInteger(), nullable=False))
    recorded_by: str = Field(max_length=120)
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class SupplySwitch(SQLModel, table=True):
    """Every switch of a flat's disconnect relay: wanted state, why, and whether it worked."""

    __tablename__ = "supply_switch"
    __table_args__ = (Index("ix_supply_switch_meter_at", "meter_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    meter_id: str = Field(foreign_key="meter.id", max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    on: bool
    reason: str = Field(max_length=32)
    ok: bool
    detail: str | None = Field(default=None, max_length=200)
