"""Tables the wallet owns: the household accounts (each with one prepaid wallet)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Column, ForeignKeyConstraint
from sqlmodel import Field, SQLModel

from columns import Money


class Account(SQLModel, table=True):
    """A household or business; `id` is unique across the installation."""

    __tablename__ = "account"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "building_id"], ["building.site_id", "building.id"]),
    )

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", index=True)
    name: str
    building_id: str | None = None
    unit: str | None = None
    email: str | None = None
    language: str = Field(default="de", max_length=2)
    # As declared in the site file; applied once as a ledger entry, kept here for export.
    opening_balance: Decimal | None = Field(default=None, sa_column=Column(Money()))
