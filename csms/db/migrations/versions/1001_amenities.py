"""amenities: machine cycles and machine status

Revision ID: 1001_amenities
Revises: 0801_billing
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "1001_amenities"
down_revision: str | Sequence[str] | None = "0801_billing"
branch_labels: str | Sequence[str] | None = ("amenities",)
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TS = column_types.UTCDateTime
_OPEN = sa.text("state IN ('authorised', 'running', 'ending')")


def upgrade() -> None:
    op.create_table(
        "amenity_cycle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("amenity_id", _STR(length=64), nullable=False),
        sa.Column("site_id", _STR(length=64), nullable=False),
        sa.Column("use_id", sa.Integer(), nullable=True),
        sa.Column("state", _STR(length=16), nullable=False),
        sa.Column("tapped_at", _TS(timezone=True), nullable=False),
        sa.Column("started_at", _TS(timezone=True), nullable=True),
        sa.Column("below_since", _TS(timezone=True), nullable=True),
        sa.Column("ended_at", _TS(timezone=True), nullable=True),
        sa.Column("end_reason", _STR(length=16), nullable=True),
        sa.Column("last_reading_at", _TS(timezone=True), nullable=True),
        sa.Column("tap_energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("last_energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("last_power_w", sa.Integer(), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("polled_at", _TS(timezone=True), nullable=True),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["amenity_id"], ["amenity.id"]),
        sa.ForeignKeyConstraint(["use_id"], ["billing_use.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("amenity_cycle", schema=None) as batch_op:
        batch_op.create_index("uq_amenity_cycle_open", ["amenity_id"], unique=True,
                              sqlite_where=_OPEN, postgresql_where=_OPEN)
        batch_op.create_index("ix_amenity_cycle_amenity_tapped", ["amenity_id", "tapped_at"])
        batch_op.create_index("ix_amenity_cycle_state", ["state"])
    op.create_table(
        "amenity_status",
        sa.Column("amenity_id", _STR(length=64), nullable=False),
        sa.Column("site_id", _STR(length=64), nullable=False),
        sa.Column("fault", _STR(length=24), nullable=True),
        sa.Column("fault_detail", _STR(length=200), nullable=True),
        sa.Column("fault_since", _TS(timezone=True), nullable=True),
        sa.Column("relay_on", sa.Boolean(), nullable=True),
        sa.Column("checked_at", _TS(timezone=True), nullable=True),
        sa.Column("since", _TS(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["amenity_id"], ["amenity.id"]),
        sa.PrimaryKeyConstraint("amenity_id"),
    )


def downgrade() -> None:
    op.drop_table("amenity_status")
    op.drop_table("amenity_cycle")
