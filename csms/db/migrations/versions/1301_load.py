"""load: site load settings, grid operator limits, cars' charging needs, the last allocation

Revision ID: 1301_load
Revises: 1201_web
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import column_types

revision: str = "1301_load"
down_revision: str | Sequence[str] | None = "1201_web"
branch_labels: str | Sequence[str] | None = ("load",)
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TS = column_types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "site_load",
        sa.Column("site_id", _STR(length=64), nullable=False),
        sa.Column("section", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "grid_limit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", _STR(length=64), nullable=False),
        sa.Column("station_id", _STR(length=64), nullable=True),
        sa.Column("limit_a", sa.Numeric(precision=8, scale=1), nullable=False),
        sa.Column("limit_w", sa.Integer(), nullable=True),
        sa.Column("starts_at", _TS(timezone=True), nullable=False),
        sa.Column("ends_at", _TS(timezone=True), nullable=False),
        sa.Column("lifted_at", _TS(timezone=True), nullable=True),
        sa.Column("reason", _STR(length=200), nullable=True),
        sa.Column("created_by", _STR(length=80), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("grid_limit") as batch:
        batch.create_index(batch.f("ix_grid_limit_site_id"), ["site_id"], unique=False)
        batch.create_index(batch.f("ix_grid_limit_ends_at"), ["ends_at"], unique=False)
    op.create_table(
        "ev_charging_need",
        sa.Column("station_id", _STR(length=64), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("departure_at", _TS(timezone=True), nullable=True),
        sa.Column("energy_wh", sa.Integer(), nullable=True),
        sa.Column("max_current_a", sa.Numeric(precision=8, scale=1), nullable=True),
        sa.Column("received_at", _TS(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "evse_id"),
    )
    op.create_table(
        "load_state",
        sa.Column("site_id", _STR(length=64), nullable=False),
        sa.Column("computed_at", _TS(timezone=True), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"]),
        sa.PrimaryKeyConstraint("site_id"),
    )


def downgrade() -> None:
    op.drop_table("load_state")
    op.drop_table("ev_charging_need")
    op.drop_table("grid_limit")
    op.drop_table("site_load")
