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


# Plain ALTER TABLE on both databases (SQLite has ADD and DROP COLUMN): rebuilding the station
# table in batch mode would cascade-delete the OCPP rows that hang on it.
def upgrade() -> None:
    op.add_column(
        "station",
        sa.Column("max_power_w", sa.Integer(), nullable=False, server_default="22080"),
    )


def downgrade() -> None:
    op.drop_column("station", "max_power_w")
