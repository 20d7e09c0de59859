"""Tables meters owns: apartment electricity meters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, ForeignKeyConstraint
from sqlmodel import Field, SQLModel


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
