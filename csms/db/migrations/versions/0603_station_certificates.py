"""ocpp: certificates the station CA issued (for renewal before they end)

Revision ID: 0603_station_certificates
Revises: 0602_ocpp_configuration
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0603_station_certificates"
down_revision: str | Sequence[str] | None = "0602_ocpp_configuration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ocpp_station_certificate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("serial", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "certificate_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False
        ),
        sa.Column("not_after", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("station_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
    )
    with op.batch_alter_table("ocpp_station_certificate", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ocpp_station_certificate_station", ["station_id", "not_after"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ocpp_station_certificate", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpp_station_certificate_station")
    op.drop_table("ocpp_station_certificate")
