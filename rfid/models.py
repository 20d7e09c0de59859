"""Tables rfid owns: badges, and the per-site version log behind the chargers' local lists."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from column_types import UTCDateTime


class Badge(SQLModel, table=True):
    """A MIFARE Classic card; `uid` is canonical (uppercase hex, byte 0 first).

    Badges are scoped to a site (`site_id`, the site of the badge's account): 4-byte UIDs are
    not unique worldwide, so the same UID may be a badge on two sites, and a badge is only ever
    found through the site of the device it is shown at.
    """

    __tablename__ = "badge"

    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=64)
    uid: str = Field(primary_key=True, max_length=20)
    account_id: str = Field(foreign_key="account.id", index=True)
    label: str | None = None
    status: str = Field(default="active", max_length=16)  # active | blocked | lost | expired
    valid_from: date | None = None
    valid_until: date | None = None
    # issued (the site's own cards) | foreign (an existing card the owner registered, e.g. for
    # building access); both must be MIFARE Classic.
    origin: str = Field(default="issued", max_length=16)
    card_type: str | None = Field(default=None, max_length=40)  # as identified at enrolment
    max_sessions: int = 1  # sessions the badge may run at once; the owner may allow more
    # The local-list status last written to the version log; a date crossing valid_from or
    # valid_until changes the effective status without an edit, and this notices it.
    list_status: str | None = Field(default=None, max_length=16)
    updated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class BadgeListVersion(SQLModel, table=True):
    """The version of a site's local authorisation list; increases on every badge change."""

    __tablename__ = "badge_list_version"

    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=64)
    version: int = 0


class BadgeChange(SQLModel, table=True):
    """One badge changed on a site at a list version. No foreign key to badge: the row must
    outlive a badge that left the site, so that stations are told to drop it."""

    __tablename__ = "badge_change"
    __table_args__ = (Index("ix_badge_change_site_version", "site_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(foreign_key="site.id", max_length=64)
    uid: str = Field(max_length=20)
    version: int
