"""Tables rfid owns: badges."""

from __future__ import annotations

from datetime import date

from sqlmodel import Field, SQLModel


class Badge(SQLModel, table=True):
    """A MIFARE Classic card; `uid` is canonical (uppercase hex, byte 0 first)."""

    __tablename__ = "badge"

    uid: str = Field(primary_key=True, max_length=20)
    account_id: str = Field(foreign_key="account.id", index=True)
    label: str | None = None
    status: str = Field(default="active", max_length=16)  # active | blocked | lost | expired
    valid_from: date | None = None
    valid_until: date | None = None
