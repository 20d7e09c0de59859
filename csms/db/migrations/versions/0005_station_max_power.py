"""inventory: the most a station's connector delivers, the plausibility limit of its energy

Revision ID: 0005_station_max_power
Revises: 0004_device_settings
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_station_max_power"
down_revision: str | Sequence[str] | None = "0004_device_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_power_w", sa.Integer(), nullable=False, server_default="22080")
        )


def downgrade() -> None:
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.drop_column("max_power_w")
