"""Alembic, driven from code: `upgrade_database(url)` at start and from `volthaus db upgrade`.

Each package's schema is a branch of revisions (`branch_labels`) on the inventory base, and
`heads` applies them all.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def upgrade_database(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


# Several nodes starting at once on one PostgreSQL database take turns migrating: the first
# applies the revisions, the others then find nothing to do. (The lock ends with the
# transaction.) SQLite serialises writers by itself.
_MIGRATION_LOCK = 0x766F6C74  # "volt"


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    command.upgrade(alembic_config(connection), "heads")
