"""Migration 0006_readers: the reader table and the reader a token is bound to come and go
without touching the tokens (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, inspect, text

from csms.db.engine import create_engine
from csms.db.migrate import alembic_config, upgrade_database

REVISION = "0006_readers"
BEFORE = "0005_station_max_power"


def _heads(connection: Connection) -> list[str]:
    return sorted(r[0] for r in connection.execute(text("SELECT version_num FROM alembic_version")))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _token_columns(connection: Connection) -> list[str]:
    return [c["name"] for c in inspect(connection).get_columns("api_token")]


def _down(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), BEFORE)


async def test_readers_come_and_go_and_the_tokens_stay(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine)
        async with engine.begin() as connection:
            heads = await connection.run_sync(_heads)
            assert any(head.startswith("00") and head >= REVISION for head in heads)
            await connection.execute(text(
                "INSERT INTO site (id, name, timezone, currency, country, auto_register_stations)"
                " VALUES ('s1', 'S1', 'Europe/Berlin', 'EUR', 'DE', false)"))
            await connection.execute(text(
                "INSERT INTO reader (id, site_id, idtag_format) VALUES ('reader-1', 's1', 'dec')"))
            await connection.execute(text(
                "INSERT INTO api_token (id, secret_sha256, role, site_id, reader_id, created_at)"
                " VALUES ('t1', 'x', 'reader', 's1', 'reader-1', CURRENT_TIMESTAMP),"
                " ('t2', 'y', 'owner', 's1', NULL, CURRENT_TIMESTAMP)"))
        async with engine.begin() as connection:
            await connection.run_sync(_down)
            assert BEFORE in set(await connection.run_sync(_heads))
            assert "reader" not in await connection.run_sync(_tables)
            assert "reader_id" not in await connection.run_sync(_token_columns)
            kept = (await connection.execute(text("SELECT id FROM api_token ORDER BY id"))).all()
            assert [r[0] for r in kept] == ["t1", "t2"]
        await upgrade_database(engine)
        async with engine.begin() as connection:
            assert await connection.run_sync(_heads) == heads
            assert "reader" in await connection.run_sync(_tables)
            bound = (await connection.execute(
                text("SELECT id, reader_id FROM api_token ORDER BY id"))).all()
            assert [tuple(r) for r in bound] == [("t1", None), ("t2", None)]
            await connection.execute(text(
                "INSERT INTO reader (id, site_id, idtag_format) VALUES ('reader-1', 's1', 'hex')"))
    finally:
        await engine.dispose()
