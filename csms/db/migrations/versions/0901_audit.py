"""audit: the staff action log

Revision ID: 0901_audit
Revises: 0001_inventory
Create Date: 2026-12-02 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0901_audit"
down_revision: str | Sequence[str] | None = "0001_inventory"
branch_labels: str | Sequence[str] | None = ("audit",)
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "staff_action",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  autoincrement=True),
        sa.Column("at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", _STR(length=8), nullable=False),
        sa.Column("actor", _STR(length=80), nullable=False),
        sa.Column("role", _STR(length=16), nullable=False),
        sa.Column("token_id", _STR(length=32), nullable=True),
        sa.Column("action", _STR(length=160), nullable=False),
        sa.Column("target", _STR(length=400), nullable=True),
        sa.Column("site_id", _STR(length=64), nullable=True),
        sa.Column("outcome", _STR(length=8), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_action_at", "staff_action", ["at"])
    op.create_index("ix_staff_action_site_at", "staff_action", ["site_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_staff_action_site_at", table_name="staff_action")
    op.drop_index("ix_staff_action_at", table_name="staff_action")
    op.drop_table("staff_action")
