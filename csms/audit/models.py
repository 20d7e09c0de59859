"""The staff action table: one row per change staff asked for, over the API or the CLI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


class StaffAction(SQLModel, table=True):
    """`actor` is `role:token_id` for the API (the same string the wallet journal keeps as
    `staff`, minus the role there) or `cli:NAME` for the command line; never a secret.

    `outcome` is `ok`, `refused` (4xx, CLI exit 2) or `failed` (5xx, another exit code);
    `committed` says whether the change reached the database: the row is then written in the
    change's own transaction, so a change never lacks its row."""

    __tablename__ = "staff_action"
    __table_args__ = (Index("ix_staff_action_site_at", "site_id", "at"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                       primary_key=True, autoincrement=True)
    )
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    channel: str = Field(max_length=8)
    actor: str = Field(max_length=80)
    role: str = Field(max_length=16)
    token_id: str | None = Field(default=None, max_length=32)
    action: str = Field(max_length=160)
    target: str | None = Field(default=None, max_length=400)
    site_id: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=8)
    status: int | None = None
    committed: bool = False
