"""station: the verified-login record (HMAC under a key outside the database)

Revision ID: 0007_station_login_verifier
Revises: 0006_readers
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_station_login_verifier"
down_revision: str | Sequence[str] | None = "0006_readers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The station table is altered in place, never rebuilt: a batch rebuild on SQLite drops the
# table, and its OCPP rows would go with it (as migration 0005 notes).


def upgrade() -> None:
    op.add_column(
        "station",
        sa.Column("login_verifier", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("station", "login_verifier")
