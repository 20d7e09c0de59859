"""Migration 1101_meters: the meter reading, standing and exchange tables come and go on their
own branch, without touching the meters or the other branches (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from csms.db.engine import create_engine
from csms.db.migrate import alembic_config, upgrade_database

TABLES = {"meter_reading", "meter_state", "meter_exchange"}


def _heads(connection: Connection) -> list[str]:
    return sorted(r[0] for r in connection.execute(text("SELECT version_num FROM alembic_version")))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _down(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), "meters@-2")  # 1102, then 1101


async def test_meter_tables_come_and_go(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine)
        async with engine.begin() as connection:
            heads = await connection.run_sync(_heads)
            assert "1102_supply_control" in heads and "1001_amenities" in heads
            assert await connection.run_sync(_tables) >= TABLES
            await connection.execute(text(
                "INSERT INTO site (id, name, timezone, currency, country, auto_register_stations)"
                " VALUES ('s1', 'S1', 'Europe/Berlin', 'EUR', 'DE', false)"))
            await connection.execute(text(
                "INSERT INTO account (id, site_id, ref, name, language) "
                "VALUES ('a-01', 's1', 'a-01', 'A', 'de')"))
            await connection.execute(text(
                "INSERT INTO tariff (id, site_id, document) VALUES ('t', 's1', '{}')"))
            await connection.execute(text(
                "INSERT INTO meter (id, site_id, account_id, profile, modbus, tariff_id) "
                "VALUES ('m-1', 's1', 'a-01', 'eastron-sdm630', '{}', 't')"))
            await connection.execute(text(
                "INSERT INTO meter_reading (meter_id, at, energy_import_wh, offset_wh, power_w, "
                "flags, billable, received_at) VALUES ('m-1', '2026-12-02 12:00:00', "
                "9000000000000, 0, 1500, '[]', true, '2026-12-02 12:00:00')"))
        async with engine.begin() as connection:
            try:
                await connection.execute(text(
                    "INSERT INTO meter_reading (meter_id, at, offset_wh, flags, billable, "
                    "received_at) VALUES ('m-1', '2026-12-02 12:00:00', 0, '[]', false, "
                    "'2026-12-02 12:00:00')"))
            except IntegrityError:
                pass  # one reading per meter and instant
            else:  # pragma: no cover - the assertion below reports it
                raise AssertionError("a second reading at the same instant was stored")
        async with engine.begin() as connection:
            await connection.run_sync(_down)
            assert not TABLES & await connection.run_sync(_tables)
            assert "1001_amenities" in await connection.run_sync(_heads)
            kept = (await connection.execute(text("SELECT id FROM meter"))).all()
            assert [r[0] for r in kept] == ["m-1"]
        await upgrade_database(engine)
        async with engine.begin() as connection:
            assert await connection.run_sync(_heads) == heads
            assert await connection.run_sync(_tables) >= TABLES
    finally:
        await engine.dispose()
