from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: str = Field(primary_key=True, max_length=32)
    secret_sha256: str = Field(max_length=64)
    role: str = Field(max_length=16)
    site_id: str | None = Field(default=None, foreign_key="site.id")
    account_id: str | None = Field(default=None, foreign_key="account.id")
    # The one reader a `reader` token is bound to. No foreign key: SQLite adds and drops a
    # column with one only by rebuilding the table; `create_token` checks the reader exists.
    reader_id: str | None = Field(default=None, max_length=64)
    label: str | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
