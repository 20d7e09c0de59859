"""billing: paid uses of every device and their usage points

Revision ID: 0801_billing
Revises: 0001_inventory
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0801_billing"
down_revision: str | Sequence[str] | None = "0001_inventory"
branch_labels: str | Sequence[str] | None = ("billing",)
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "billing_use",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _STR(length=16), nullable=False),
        sa.Column("device_id", _STR(length=64), nullable=False),
        sa.Column("use_ref", _STR(length=64), nullable=False),
        sa.Column("site_id", _STR(length=64), nullable=False),
        sa.Column("id_tag", _STR(length=64), nullable=True),
        sa.Column("badge_uid", _STR(length=20), nullable=True),
        sa.Column("account_id", _STR(length=64), nullable=True),
        sa.Column("auth_status", _STR(length=24), nullable=True),
        sa.Column("tariff_id", _STR(length=64), nullable=False),
        sa.Column("tariff", sa.JSON(), nullable=False),
        sa.Column("currency", _STR(length=3), nullable=False),
        sa.Column("max_power_w", sa.Integer(), nullable=True),
        sa.Column("status", _STR(length=12), nullable=False),
        sa.Column("started_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", _STR(length=32), nullable=True),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("idle_s", sa.Integer(), nullable=False),
        sa.Column("last_register_wh", sa.BigInteger(), nullable=True),
        sa.Column("hold_id", _STR(length=32), nullable=True),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.Column("live_gross", column_types.Money(), nullable=True),
        sa.Column("net", column_types.Money(), nullable=True),
        sa.Column("vat", column_types.Money(), nullable=True),
        sa.Column("gross", column_types.Money(), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("entry_id", _STR(length=32), nullable=True),
        sa.Column("billed_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("point_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("stop_requested_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_requests", sa.Integer(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "device_id", "use_ref", name="uq_billing_use_device_ref"),
    )
    with op.batch_alter_table("billing_use", schema=None) as batch_op:
        batch_op.create_index("ix_billing_use_site_started", ["site_id", "started_at"])
        batch_op.create_index("ix_billing_use_account_started", ["account_id", "started_at"])
        batch_op.create_index("ix_billing_use_badge_status", ["site_id", "badge_uid", "status"])
        batch_op.create_index("ix_billing_use_status", ["status"])

    op.create_table(
        "billing_point",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("use_id", sa.Integer(), nullable=False),
        sa.Column("source", _STR(length=200), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("kind", _STR(length=8), nullable=False),
        sa.Column("at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("device_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("implausible", sa.Boolean(), nullable=False),
        sa.Column("register_wh", sa.BigInteger(), nullable=True),
        sa.Column("state", _STR(length=24), nullable=True),
        sa.Column("seq_no", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["use_id"], ["billing_use.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("use_id", "source", "idx", name="uq_billing_point_source"),
    )
    with op.batch_alter_table("billing_point", schema=None) as batch_op:
        batch_op.create_index("ix_billing_point_use_at", ["use_id", "at"])


def downgrade() -> None:
    op.drop_table("billing_point")
    op.drop_table("billing_use")
