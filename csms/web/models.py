"""People who sign in to the pages: users, their sessions, set-password links, failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime

WEB_ROLES = ("admin", "owner", "installer", "resident")


class WebUser(SQLModel, table=True):
    """A person: staff of a site (owner, installer), an admin of all sites, or a resident of one
    household. The password is stored as an argon2id hash; None until set through a link."""

    __tablename__ = "web_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)  # stored lower-case
    password_hash: str | None = Field(default=None, max_length=200)
    role: str = Field(max_length=16)
    site_id: str | None = Field(default=None, foreign_key="site.id", index=True)
    account_id: str | None = Field(default=None, foreign_key="account.id")
    language: str = Field(default="de", max_length=2)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class WebSession(SQLModel, table=True):
    """A signed-in browser. Only SHA-256 of the cookie's secret is stored; `csrf` is the token
    every form of this session must send back."""

    __tablename__ = "web_session"

    id_sha256: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="web_user.id", index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class PasswordLink(SQLModel, table=True):
    """A one-time link to set a password (first sign-in, or a reset an admin asks for)."""

    __tablename__ = "web_password_link"

    token_sha256: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="web_user.id", index=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class LoginFailure(SQLModel, table=True):
    """A wrong password, kept for the throttle (by e-mail and by client address)."""

    __tablename__ = "web_login_failure"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, index=True)
    client: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
