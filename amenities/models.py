"""Tables amenities owns: relay-switched machines and the badge readers at them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, ForeignKeyConstraint
from sqlmodel import Field, SQLModel


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
