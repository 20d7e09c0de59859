"""rfid: badge origin, card type, concurrent sessions, list status; local-list version log

Revision ID: 0501_rfid_badges
Revises: 0001_inventory
Create Date: 2026-11-22 10:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0501_rfid_badges"
down_revision: str | Sequence[str] | None = "0001_inventory"
branch_labels: str | Sequence[str] | None = ("rfid",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("badge", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "origin", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
            server_default="issued",
        ))
        batch_op.add_column(sa.Column(
            "card_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True
        ))
        batch_op.add_column(sa.Column(
            "max_sessions", sa.Integer(), nullable=False, server_default="1"
        ))
        batch_op.add_column(sa.Column(
            "list_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
        ))
        batch_op.add_column(sa.Column("updated_at", column_types.UTCDateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        "badge_list_version",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "badge_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("uid", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_badge_change_site_version", "badge_change", ["site_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_badge_change_site_version", table_name="badge_change")
    op.drop_table("badge_change")
    op.drop_table("badge_list_version")
    with op.batch_alter_table("badge", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("list_status")
        batch_op.drop_column("max_sessions")
        batch_op.drop_column("card_type")
        batch_op.drop_column("origin")
