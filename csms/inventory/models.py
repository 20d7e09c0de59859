"""Tables of the inventory that the central system owns (accounts, badges, amenities and meters
live with their packages)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, ForeignKeyConstraint
from sqlmodel import Field, SQLModel

from column_types import Money, UTCDateTime

# 500.00 in the 1/10,000 units of `Money` columns: the default of both limits.
MAX_DEFAULT_UNITS = "5000000"


# An AC connector's most: 3 phases x 32 A x 230 V (IEC 61851 mode 3).
DEFAULT_MAX_POWER_W = 22_080


class Site(SQLModel, table=True):
    __tablename__ = "site"

    id: str = Field(primary_key=True, max_length=64)
    name: str
    timezone: str
    currency: str = Field(max_length=3)
    country: str = Field(max_length=2)
    region: str | None = None
    auto_register_stations: bool = False
    # The most a person may put in at once: one cash top-up, one voucher (site file keys).
    max_top_up: Decimal = Field(default=Decimal("500.00"), sa_column=Column(
        "max_top_up", Money(), nullable=False, server_default=MAX_DEFAULT_UNITS))
    max_voucher: Decimal = Field(default=Decimal("500.00"), sa_column=Column(
        "max_voucher", Money(), nullable=False, server_default=MAX_DEFAULT_UNITS))
    max_uses_per_badge: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    master_pass_account: str | None = Field(default=None, max_length=64)  # an account's ref
    # The site file's custom meter profiles (devices.md), as written.
    meter_profiles: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class Building(SQLModel, table=True):
    __tablename__ = "building"

    site_id: str = Field(foreign_key="site.id", primary_key=True)
    id: str = Field(primary_key=True, max_length=64)
    name: str | None = None


class Tariff(SQLModel, table=True):
    """A tariff document of tariff.md, kept as written so that export gives it back unchanged."""

    __tablename__ = "tariff"

    site_id: str = Field(foreign_key="site.id", primary_key=True)
    id: str = Field(primary_key=True, max_length=64)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class Station(SQLModel, table=True):
    """A wallbox; `id` is its OCPP identity, unique across the installation."""

    __tablename__ = "station"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "tariff_id"], ["tariff.site_id", "tariff.id"]),
        ForeignKeyConstraint(["site_id", "building_id"], ["building.site_id", "building.id"]),
    )

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    building_id: str | None = None
    protocol: str
    security_profile: int
    password_hash: str | None = None
    # HMAC under the node's login key of (id, password_hash, password), written once the
    # password was verified (or at a site import of plain passwords, before any hash exists).
    login_verifier: str | None = Field(default=None, max_length=80)
    connectors: int
    # None for an auto-registered station until it is approved with one: it cannot bill.
    tariff_id: str | None = None
    idtag_format: str = "hex"
    # The most one connector delivers: energy beyond it in the elapsed time is not billed.
    max_power_w: int = DEFAULT_MAX_POWER_W
    # Set for a station that booted unknown on a site with auto-registration until approved.
    pending_approval: bool = False
    # Set by an installer: the station's next boots are answered Pending (re-commissioning)
    # until it is set back; operator commands and TriggerMessage still reach it.
    boot_pending: bool = False
    created_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class TariffVersion(SQLModel, table=True):
    """Every published state of a tariff, numbered from 1 per tariff. The `tariff` row holds the
    newest; a paid use keeps the document it started with (billing snapshots it)."""

    __tablename__ = "tariff_version"

    site_id: str = Field(primary_key=True, max_length=64)
    tariff_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    published_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    published_by: str = Field(max_length=80)
