"""ocpp: reservations (ReserveNow sent, the station's answer, and how each ended)

Revision ID: 0604_reservations
Revises: 0603_station_certificates
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0604_reservations"
down_revision: str | Sequence[str] | None = "0603_station_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reservation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("protocol", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("id_tag", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("badge_uid", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("expires_at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("ended", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("ended_at", column_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("created_at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_reservation_station_open", "reservation", ["station_id", "ended"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reservation_station_open", table_name="reservation")
    op.drop_table("reservation")
