"""Migration 0104_account_ref + 0502_badge_site: a database created at the previous heads, with
accounts and badges in it, upgrades (SQLite and PostgreSQL) and its rows stay usable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from alembic import command
from sqlalchemy import Connection, inspect, text

from csms.db.engine import create_engine, session_factory
from csms.db.migrate import alembic_config, upgrade_database
from csms.inventory.sitefile import export_site, import_site
from rfid.registry import block_badge, lookup
from wallet.accounts import account_by_ref
from wallet.service import top_up_cash, wallet_view

PREVIOUS_HEADS = ("0103_wallet_alert_audience", "0501_rfid_badges", "0602_ocpp_configuration",
                  "0701_charging")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _to_previous_heads(connection: Connection) -> None:
    for revision in PREVIOUS_HEADS:
        command.upgrade(alembic_config(connection), revision)


def _old_rows(connection: Connection) -> None:
    for site in ("lindenhof", "seeblick"):
        connection.execute(text(
            "INSERT INTO site (id, name, timezone, currency, country, auto_register_stations)"
            " VALUES (:id, :id, 'Europe/Berlin', 'EUR', 'DE', false)"), {"id": site})
    connection.execute(text(
        "INSERT INTO account (id, site_id, name, language) VALUES"
        " ('a-01', 'lindenhof', 'Keller', 'de'), ('s-01', 'seeblick', 'Berg', 'de')"))
    connection.execute(text(
        "INSERT INTO badge (uid, account_id, status, origin, max_sessions) VALUES"
        " ('04A2B3C4', 'a-01', 'active', 'issued', 1),"
        " ('F1E2D3C4', 's-01', 'active', 'issued', 1)"))


def site_document(site_id: str, uid: str) -> dict[str, Any]:
    return {
        "site": {"id": site_id, "name": site_id, "timezone": "Europe/Berlin", "currency": "EUR",
                 "country": "DE"},
        "accounts": [{"id": "a-01", "name": f"Flat a-01 of {site_id}"}],
        "badges": [{"uid": uid, "account": "a-01"}],
    }


async def test_previous_heads_upgrade_with_accounts_and_badges_kept(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_to_previous_heads)
            await connection.run_sync(_old_rows)
        await upgrade_database(engine)

        async with engine.connect() as connection:
            accounts = (await connection.execute(
                text("SELECT id, ref, site_id FROM account ORDER BY id"))).all()
            badges = (await connection.execute(
                text("SELECT site_id, uid, account_id FROM badge ORDER BY uid"))).all()
            key = await connection.run_sync(
                lambda c: inspect(c).get_pk_constraint("badge")["constrained_columns"])
            unique = await connection.run_sync(
                lambda c: {i["name"]: i for i in inspect(c).get_indexes("account")})
        assert key == ["site_id", "uid"]
        assert unique["uq_account_site_ref"]["column_names"] == ["site_id", "ref"]
        assert unique["uq_account_site_ref"]["unique"]
        assert [tuple(row) for row in accounts] == [
            ("a-01", "a-01", "lindenhof"), ("s-01", "s-01", "seeblick")]
        assert [tuple(row) for row in badges] == [
            ("lindenhof", "04A2B3C4", "a-01"), ("seeblick", "F1E2D3C4", "s-01")]

        # The migrated rows work: the site file matches them, and a second site may now use
        # the same account id and badge UID.
        await import_site(engine, site_document("lindenhof", "04A2B3C4"))
        await import_site(engine, site_document("seeblick", "04A2B3C4"))
        async with session_factory(engine)() as session:
            keller = await account_by_ref(session, "lindenhof", "a-01")
            seeblick_a01 = await account_by_ref(session, "seeblick", "a-01")
            assert keller is not None and keller.id == "a-01"
            assert seeblick_a01 is not None and seeblick_a01.id == "seeblick:a-01"
            await top_up_cash(session, account_id=keller.id, amount=Decimal("20.00"),
                              receipt="R-1", staff="desk", at=NOW)
            found = await lookup(session, "04A2B3C4", "hex", site_id="lindenhof")
            assert found is not None and found.badge.account_id == "a-01"
            found = await lookup(session, "04A2B3C4", "hex", site_id="seeblick")
            assert found is not None and found.badge.account_id == "seeblick:a-01"
            await block_badge(session, "lindenhof", "04A2B3C4", now=NOW)
            await session.commit()
            assert (await wallet_view(session, "a-01", NOW)).balance == Decimal("20.00")
            lindenhof = await export_site(session, "lindenhof")
        assert lindenhof["accounts"][0]["id"] == "a-01"
        assert lindenhof["badges"] == [
            {"uid": "04A2B3C4", "account": "a-01", "status": "blocked", "origin": "issued",
             "max_sessions": 1}]
    finally:
        await engine.dispose()


def _down_to_previous_heads(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), "0501_rfid_badges")
    command.downgrade(alembic_config(connection), "0103_wallet_alert_audience")


async def test_downgrade_and_upgrade_again_keep_the_rows(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine)
        await import_site(engine, site_document("lindenhof", "04A2B3C4"))
        async with engine.begin() as connection:
            await connection.run_sync(_down_to_previous_heads)
            badges = (await connection.execute(text("SELECT uid, account_id FROM badge"))).all()
        assert [tuple(row) for row in badges] == [("04A2B3C4", "a-01")]
        await upgrade_database(engine)
        async with engine.connect() as connection:
            badges = (await connection.execute(text("SELECT site_id, uid FROM badge"))).all()
            accounts = (await connection.execute(text("SELECT id, ref FROM account"))).all()
        assert [tuple(row) for row in badges] == [("lindenhof", "04A2B3C4")]
        assert [tuple(row) for row in accounts] == [("a-01", "a-01")]
    finally:
        await engine.dispose()
