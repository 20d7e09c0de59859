"""Tables of load management: a site's settings, the grid operator's temporary limits, the
cars' charging needs (2.0.1), and the last allocation (what the API shows)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


class SiteLoad(SQLModel, table=True):
    """The site file's `load:` section as written (export gives it back unchanged)."""

    __tablename__ = "site_load"

    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=64)
    section: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class GridLimit(SQLModel, table=True):
    """A temporary reduced limit the grid operator asked for (§14a EnWG): for the site's
    connection, or for one station; active from `starts_at` until `ends_at` or lifted."""

    __tablename__ = "grid_limit"

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(foreign_key="site.id", index=True, max_length=64)
    station_id: str | None = Field(default=None, max_length=64)
    limit_a: Decimal = Field(max_digits=8, decimal_places=1)  # per phase
    limit_w: int | None = None  # as asked, when given in kW
    starts_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    lifted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    reason: str | None = Field(default=None, max_length=200)
    created_by: str = Field(max_length=80)


class ChargingNeed(SQLModel, table=True):
    """What a car said it needs (2.0.1 NotifyEVChargingNeeds), the newest per EVSE."""

    __tablename__ = "ev_charging_need"

    station_id: str = Field(primary_key=True, max_length=64)
    evse_id: int = Field(primary_key=True)
    departure_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    energy_wh: int | None = None
    max_current_a: Decimal | None = Field(default=None, max_digits=8, decimal_places=1)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class LoadState(SQLModel, table=True):
    """The last computation for a site: measured load and each station's limit."""

    __tablename__ = "load_state"

    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=64)
    computed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
