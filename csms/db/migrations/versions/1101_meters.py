"""meters: readings, each meter's standing, recorded exchanges

Revision ID: 1101_meters
Revises: 0801_billing
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "1101_meters"
# After billing, so supply billing (on this branch) may refer to billing_use.
down_revision: str | Sequence[str] | None = "0801_billing"
branch_labels: str | Sequence[str] | None = ("meters",)
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TS = column_types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "meter_reading",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", _STR(length=64), nullable=False),
        sa.Column("at", _TS(timezone=True), nullable=False),
        sa.Column("energy_import_wh", sa.BigInteger(), nullable=True),
        sa.Column("offset_wh", sa.BigInteger(), nullable=False),
        sa.Column("power_w", sa.Integer(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("received_at", _TS(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("meter_id", "at", name="uq_meter_reading_meter_at"),
    )
    op.create_table(
        "meter_state",
        sa.Column("meter_id", _STR(length=64), nullable=False),
        sa.Column("last_reading_at", _TS(timezone=True), nullable=True),
        sa.Column("last_energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("last_billable_at", _TS(timezone=True), nullable=True),
        sa.Column("last_billable_wh", sa.BigInteger(), nullable=True),
        sa.Column("offset_wh", sa.BigInteger(), nullable=False),
        sa.Column("exchanged_at", _TS(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("backed_off_until", _TS(timezone=True), nullable=True),
        sa.Column("last_failure", _STR(length=200), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("supply", _STR(length=8), nullable=False),
        sa.Column("supply_changed_at", _TS(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.PrimaryKeyConstraint("meter_id"),
    )
    op.create_table(
        "meter_exchange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", _STR(length=64), nullable=False),
        sa.Column("at", _TS(timezone=True), nullable=False),
        sa.Column("old_final_wh", sa.BigInteger(), nullable=False),
        sa.Column("new_initial_wh", sa.BigInteger(), nullable=False),
        sa.Column("recorded_by", _STR(length=120), nullable=False),
        sa.Column("recorded_at", _TS(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("meter_exchange", schema=None) as batch_op:
        batch_op.create_index("ix_meter_exchange_meter_at", ["meter_id", "at"])


def downgrade() -> None:
    op.drop_table("meter_exchange")
    op.drop_table("meter_state")
    op.drop_table("meter_reading")
