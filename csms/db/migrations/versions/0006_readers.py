"""inventory: badge readers at machines (`readers[]`), and the reader a `reader` token is bound to

Revision ID: 0006_readers
Revises: 0005_station_max_power
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_readers"
down_revision: str | Sequence[str] | None = "0005_station_max_power"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reader",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("building_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("idtag_format", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.ForeignKeyConstraint(["site_id", "building_id"], ["building.site_id", "building.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reader_site_id"), "reader", ["site_id"], unique=False)
    # A plain ADD COLUMN on both databases, without a foreign key: SQLite would have to rebuild
    # api_token for one (and could not drop the column again in place).
    op.add_column(
        "api_token",
        sa.Column("reader_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )


def downgrade() -> None:
    # Reader tokens stay, inert: no route of the older schema admits role `reader`, and after
    # an upgrade again a token without its reader is refused at every reader (403).
    op.drop_column("api_token", "reader_id")
    op.drop_index(op.f("ix_reader_site_id"), table_name="reader")
    op.drop_table("reader")
