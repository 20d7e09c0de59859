"""meters: supply warnings and the log of every disconnect-relay switch

Revision ID: 1102_supply_control
Revises: 1101_meters
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "1102_supply_control"
down_revision: str | Sequence[str] | None = "1101_meters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TS = column_types.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("meter_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warned_at", _TS(timezone=True), nullable=True))
    op.create_table(
        "supply_switch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", _STR(length=64), nullable=False),
        sa.Column("at", _TS(timezone=True), nullable=False),
        sa.Column("on", sa.Boolean(), nullable=False),
        sa.Column("reason", _STR(length=32), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", _STR(length=200), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supply_switch", schema=None) as batch_op:
        batch_op.create_index("ix_supply_switch_meter_at", ["meter_id", "at"])


def downgrade() -> None:
    op.drop_table("supply_switch")
    with op.batch_alter_table("meter_state", schema=None) as batch_op:
        batch_op.drop_column("warned_at")
