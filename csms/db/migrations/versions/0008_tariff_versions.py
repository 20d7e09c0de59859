"""inventory: published tariff versions

Revision ID: 0008_tariff_versions
Revises: 0007_station_login_verifier
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "0008_tariff_versions"
down_revision: str | Sequence[str] | None = "0007_station_login_verifier"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tariff_version",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("tariff_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("published_at", column_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "tariff_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("tariff_version")
