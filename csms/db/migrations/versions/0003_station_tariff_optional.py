"""inventory: a station's tariff is optional (an auto-registered station has none until an
installer approves it with one; without a tariff a station bills nothing)

On SQLite the NOT NULL is dropped in place (sqlite.org, "ALTER TABLE": removing a NOT NULL
constraint is one of the schema changes that leave the stored rows valid, made by editing the
schema text): rebuilding the table would drop it first, and its ON DELETE CASCADE children
(OCPP state, charging sessions) with it.

Revision ID: 0003_station_tariff_optional
Revises: 0002_site_money_limits
Create Date: 2026-12-02 12:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003_station_tariff_optional"
down_revision: str | Sequence[str] | None = "0002_site_money_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMN = "tariff_id VARCHAR"


def _sqlite_set_not_null(required: bool) -> None:
    bind = op.get_bind()
    text = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'station'")
    ).scalar_one()
    old, new = (_COLUMN, f"{_COLUMN} NOT NULL") if required else (f"{_COLUMN} NOT NULL", _COLUMN)
    if text.count(old + ",") != 1:
        raise RuntimeError(f"station table not as expected: {text}")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'station'"),
        {"sql": text.replace(old + ",", new + ",")},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))
    columns = bind.execute(sa.text("PRAGMA table_info(station)")).all()
    if [bool(c[3]) for c in columns if c[1] == "tariff_id"] != [required]:
        raise RuntimeError("station.tariff_id: the NOT NULL change did not take")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_set_not_null(False)
    else:
        op.alter_column("station", "tariff_id", existing_type=sqlmodel.sql.sqltypes.AutoString(),
                        nullable=True)


def downgrade() -> None:
    # Stations without a tariff get what the old auto-registration gave them: the site's
    # alphabetically first tariff. A site without tariffs cannot go back.
    op.execute(
        "UPDATE station SET tariff_id = (SELECT min(tariff.id) FROM tariff"
        " WHERE tariff.site_id = station.site_id) WHERE tariff_id IS NULL"
    )
    if op.get_bind().dialect.name == "sqlite":
        left = op.get_bind().execute(
            sa.text("SELECT count(*) FROM station WHERE tariff_id IS NULL")
        ).scalar_one()
        if left:
            raise RuntimeError(f"{left} station(s) on sites without tariffs: cannot downgrade")
        _sqlite_set_not_null(True)
    else:
        op.alter_column("station", "tariff_id", existing_type=sqlmodel.sql.sqltypes.AutoString(),
                        nullable=False)
