"""Migrations 0003_station_tariff_optional and 0004_device_settings: a station's tariff becomes
optional without touching the rows that hang on the station (SQLite drops the NOT NULL in place:
rebuilding the table would cascade-delete its OCPP state); down again, a station without tariff
gets the site's first one, as before, and the device settings' columns go and come back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, inspect, text

from csms.db.engine import create_engine
from csms.db.migrate import alembic_config, upgrade_database

REVISION = "0003_station_tariff_optional"
DEVICE_SETTINGS = "0004_device_settings"
BEFORE = "0002_site_money_limits"  # the inventory revision both come after


def _rows(connection: Connection) -> None:
    connection.execute(text(
        "INSERT INTO site (id, name, timezone, currency, country, auto_register_stations)"
        " VALUES ('s1', 'S1', 'Europe/Berlin', 'EUR', 'DE', true)"))
    connection.execute(text(
        "INSERT INTO tariff (site_id, id, document) VALUES ('s1', 'wallbox', '{}'),"
        " ('s1', 'household', '{}')"))
    connection.execute(text(
        "INSERT INTO station (id, site_id, protocol, security_profile, connectors, tariff_id,"
        " idtag_format, pending_approval) VALUES"
        " ('WB-1', 's1', 'ocpp1.6', 0, 1, 'wallbox', 'hex', false)"))
    connection.execute(text(
        "INSERT INTO ocpp_station (station_id, connected, send_after_boot, boot_count)"
        " VALUES ('WB-1', false, false, 0)"))


def _down(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), BEFORE)


def _heads(connection: Connection) -> list[str]:
    return sorted(r[0] for r in connection.execute(text("SELECT version_num FROM alembic_version")))


async def test_the_tariff_becomes_optional_and_the_station_rows_stay(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine)
        async with engine.begin() as connection:
            await connection.run_sync(_rows)
            heads = await connection.run_sync(_heads)
            # The inventory chain (00xx) stands at or after both revisions.
            assert any(head.startswith("00") and head >= DEVICE_SETTINGS for head in heads)
            await connection.execute(text(
                "INSERT INTO station (id, site_id, protocol, security_profile, connectors,"
                " idtag_format, pending_approval) VALUES"
                " ('WB-NEW', 's1', 'ocpp1.6', 0, 1, 'hex', true)"))
        async with engine.begin() as connection:
            await connection.run_sync(_down)
            assert BEFORE in set(await connection.run_sync(_heads))
            assert "meter_profiles" not in await connection.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("site")]
            )
            tariffs = dict((await connection.execute(
                text("SELECT id, tariff_id FROM station ORDER BY id"))).all())
            assert tariffs == {"WB-1": "wallbox", "WB-NEW": "household"}
            kept = (await connection.execute(text("SELECT station_id FROM ocpp_station"))).all()
            assert [r[0] for r in kept] == ["WB-1"]
        await upgrade_database(engine)
        async with engine.begin() as connection:
            assert await connection.run_sync(_heads) == heads
            await connection.execute(
                text("UPDATE station SET tariff_id = NULL WHERE id = 'WB-NEW'")
            )
            kept = (await connection.execute(text("SELECT station_id FROM ocpp_station"))).all()
            assert [r[0] for r in kept] == ["WB-1"]
            await connection.execute(text("UPDATE site SET meter_profiles = '[]'"))
    finally:
        await engine.dispose()
