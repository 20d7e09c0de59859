"""Tables amenities owns: relay-switched machines and the badge readers at them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKeyConstraint, Index, text
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


class Amenity(SQLModel, table=True):
    __tablename__ = "amenity"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "tariff_id"], ["tariff.site_id", "tariff.id"]),
        ForeignKeyConstraint(["site_id", "building_id"], ["building.site_id", "building.id"]),
    )

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    building_id: str | None = None
    kind: str = Field(max_length=16)  # washer | dryer | other
    tariff_id: str
    relay: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    reader: str | None = None
    # Where power is read when the relay does not measure it (profile + modbus), and the cycle
    # thresholds, as the site file gives them (devices.md; defaults stay implicit).
    power: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    cycle: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class Reader(SQLModel, table=True):
    """A badge reader at one or more machines (`readers[]` of the site file); its id is unique
    across the installation, like a machine's, because a reader token names it alone."""

    __tablename__ = "reader"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "building_id"], ["building.site_id", "building.id"]),
    )

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    building_id: str | None = None
    # How the reader writes a UID (rfid.uid formats), as for stations.
    idtag_format: str = Field(default="hex", max_length=16)


# The cycle states that hold a machine (amenities.cycle.OPEN_STATES, as stored).
OPEN_CYCLE_STATES = ("authorised", "running", "ending")


class AmenityCycle(SQLModel, table=True):
    """One cycle of a machine, from the tap to its end, as the controller last stored it
    (amenities.cycle.Cycle plus what the controller needs to resume after a restart). Its money
    is the paid use `use_id` (billing_use, kind "laundry", use_ref = this id)."""

    __tablename__ = "amenity_cycle"
    __table_args__ = (
        # At most one open cycle per machine: a second tap finds it instead of starting another.
        Index(
            "uq_amenity_cycle_open", "amenity_id", unique=True,
            sqlite_where=text("state IN ('authorised', 'running', 'ending')"),
            postgresql_where=text("state IN ('authorised', 'running', 'ending')"),
        ),
        Index("ix_amenity_cycle_amenity_tapped", "amenity_id", "tapped_at"),
        Index("ix_amenity_cycle_state", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    amenity_id: str = Field(foreign_key="amenity.id", max_length=64)
    site_id: str = Field(max_length=64)
    use_id: int | None = Field(default=None, foreign_key="billing_use.id")
    state: str = Field(max_length=16)
    tapped_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    below_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    end_reason: str | None = Field(default=None, max_length=16)
    last_reading_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # The energy register when the relay was switched on (the cycle's energy counts from it).
    tap_energy_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    last_energy_wh: int | None = Field(default=None, sa_column=Column(BigInteger()))
    last_power_w: int | None = None
    # Readings taken (numbers the usage points and the hold raises of this cycle).
    polls: int = 0
    # When the controller last looked at it (readings or not): another node skips it until due.
    polled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # The relay was switched off after the end and read back off.
    released: bool = False


class AmenityStatus(SQLModel, table=True):
    """A machine's standing apart from its cycles: a fault (out of order) and its relay as
    last read back. One row per machine, locked by every tap so taps on one machine queue."""

    __tablename__ = "amenity_status"

    amenity_id: str = Field(foreign_key="amenity.id", primary_key=True, max_length=64)
    site_id: str = Field(max_length=64)
    # relay_unreachable | relay_stuck_off | relay_stuck_on | readings_lost; None: works.
    fault: str | None = Field(default=None, max_length=24)
    fault_detail: str | None = Field(default=None, max_length=200)
    fault_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    relay_on: bool | None = None
    checked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # Since when the machine is in its current state (free since the last cycle ended).
    since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
