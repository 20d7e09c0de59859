"""charging: sessions, usage points, station settings

Revision ID: 0701_charging
Revises: 0001_inventory
Create Date: 2026-11-22 10:00:10.681489
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0701_charging"
down_revision: str | Sequence[str] | None = "0001_inventory"
branch_labels: str | Sequence[str] | None = ("charging",)
depends_on: str | Sequence[str] | None = "0601_ocpp"


def upgrade() -> None:

    op.create_table(
        "charging_session",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("station_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("station_tx_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("protocol", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("id_tag", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("auth_status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("tariff_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("tariff", sa.JSON(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("started_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_message_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("meter_start_wh", sa.BigInteger(), nullable=True),
        sa.Column("meter_last_wh", sa.BigInteger(), nullable=True),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("idle_s", sa.Integer(), nullable=False),
        sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("start_seq", sa.Integer(), nullable=True),
        sa.Column("end_seq", sa.Integer(), nullable=True),
        sa.Column("ended_received_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("hold_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.Column("live_gross", column_types.Money(), nullable=True),
        sa.Column("net", column_types.Money(), nullable=True),
        sa.Column("vat", column_types.Money(), nullable=True),
        sa.Column("gross", column_types.Money(), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("billed_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_requested_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_requests", sa.Integer(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["id"],
            ["ocpp_transaction.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("station_id", "station_tx_id", name="uq_charging_session_station_tx"),
    )
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.create_index(
            "ix_charging_session_account_started", ["account_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_charging_session_site_started", ["site_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_charging_session_status", ["status"], unique=False)

    op.create_table(
        "charging_point",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("station_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("implausible", sa.Boolean(), nullable=False),
        sa.Column("register_wh", sa.BigInteger(), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("seq_no", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["charging_session.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "source", "idx", name="uq_charging_point_source"),
    )
    with op.batch_alter_table("charging_point", schema=None) as batch_op:
        batch_op.create_index("ix_charging_point_session_at", ["session_id", "at"], unique=False)

    op.create_table(
        "charging_station_config",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("california_pricing", sa.Boolean(), nullable=False),
        sa.Column("reboot_close_after_s", sa.Integer(), nullable=False),
        sa.Column("silent_close_after_s", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["station_id"], ["station.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("station_id"),
    )



def downgrade() -> None:

    op.drop_table("charging_station_config")
    with op.batch_alter_table("charging_point", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_point_session_at")

    op.drop_table("charging_point")
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_session_status")
        batch_op.drop_index("ix_charging_session_site_started")
        batch_op.drop_index("ix_charging_session_account_started")

    op.drop_table("charging_session")

