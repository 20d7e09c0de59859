"""ocpp: each station's configuration as last read (after a boot, or from 2.0.1 reports)

Revision ID: 0602_ocpp_configuration
Revises: 0601_ocpp
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0602_ocpp_configuration"
down_revision: str | Sequence[str] | None = "0601_ocpp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ocpp_station") as batch:
        batch.add_column(sa.Column("configuration", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column(
                "configuration_read_at", column_types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch.add_column(
            sa.Column("configuration_firmware", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("ocpp_station") as batch:
        batch.drop_column("configuration_firmware")
        batch.drop_column("configuration_read_at")
        batch.drop_column("configuration")
