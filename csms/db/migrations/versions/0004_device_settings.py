"""inventory: the device contract's settings kept as written in the site file: an amenity's
`power` source and `cycle` thresholds, a meter's `poll_s`, the site's custom `meter_profiles`

Revision ID: 0004_device_settings
Revises: 0003_station_tariff_optional
Create Date: 2026-12-02 12:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_device_settings"
down_revision: str | Sequence[str] | None = "0003_station_tariff_optional"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("amenity", sa.Column("power", sa.JSON(), nullable=True))
    op.add_column("amenity", sa.Column("cycle", sa.JSON(), nullable=True))
    op.add_column("meter", sa.Column("poll_s", sa.Integer(), nullable=True))
    op.add_column("site", sa.Column("meter_profiles", sa.JSON(), nullable=True))


def downgrade() -> None:
    # SQLite drops the columns in place (3.35+); rebuilding `site` would trip every foreign key
    # that points at it.
    op.drop_column("site", "meter_profiles")
    op.drop_column("meter", "poll_s")
    op.drop_column("amenity", "cycle")
    op.drop_column("amenity", "power")
