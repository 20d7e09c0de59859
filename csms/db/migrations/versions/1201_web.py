"""web: users who sign in to the pages, their sessions, set-password links, failed sign-ins

Revision ID: 1201_web
Revises: 0105_staff_alerts
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "1201_web"
down_revision: str | Sequence[str] | None = "0105_staff_alerts"
branch_labels: str | Sequence[str] | None = ("web",)
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TS = column_types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "web_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", _STR(length=254), nullable=False),
        sa.Column("password_hash", _STR(length=200), nullable=True),
        sa.Column("role", _STR(length=16), nullable=False),
        sa.Column("site_id", _STR(length=64), nullable=True),
        sa.Column("account_id", _STR(length=64), nullable=True),
        sa.Column("language", _STR(length=2), nullable=False),
        sa.Column("created_at", _TS(timezone=True), nullable=False),
        sa.Column("disabled_at", _TS(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("web_user") as batch:
        batch.create_index(batch.f("ix_web_user_email"), ["email"], unique=True)
        batch.create_index(batch.f("ix_web_user_site_id"), ["site_id"], unique=False)
    op.create_table(
        "web_session",
        sa.Column("id_sha256", _STR(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", _STR(length=64), nullable=False),
        sa.Column("created_at", _TS(timezone=True), nullable=False),
        sa.Column("expires_at", _TS(timezone=True), nullable=False),
        sa.Column("ended_at", _TS(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["web_user.id"]),
        sa.PrimaryKeyConstraint("id_sha256"),
    )
    with op.batch_alter_table("web_session") as batch:
        batch.create_index(batch.f("ix_web_session_user_id"), ["user_id"], unique=False)
    op.create_table(
        "web_password_link",
        sa.Column("token_sha256", _STR(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS(timezone=True), nullable=False),
        sa.Column("expires_at", _TS(timezone=True), nullable=False),
        sa.Column("used_at", _TS(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["web_user.id"]),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    with op.batch_alter_table("web_password_link") as batch:
        batch.create_index(batch.f("ix_web_password_link_user_id"), ["user_id"], unique=False)
    op.create_table(
        "web_login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", _STR(length=254), nullable=False),
        sa.Column("client", _STR(length=64), nullable=False),
        sa.Column("at", _TS(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("web_login_failure") as batch:
        batch.create_index(batch.f("ix_web_login_failure_email"), ["email"], unique=False)
        batch.create_index(batch.f("ix_web_login_failure_client"), ["client"], unique=False)
        batch.create_index(batch.f("ix_web_login_failure_at"), ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("web_login_failure")
    op.drop_table("web_password_link")
    op.drop_table("web_session")
    op.drop_table("web_user")
