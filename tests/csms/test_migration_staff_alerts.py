"""Migration 0105_staff_alerts on SQLite and PostgreSQL: the alerts already in the outbox get their
account's site, an alert may then have no account, and down again the account-less alerts go
while the households' stay."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from csms.db.engine import create_engine
from csms.db.migrate import alembic_config

REVISION = "0105_staff_alerts"
BEFORE = "0104_account_ref"
ALERT = ("INSERT INTO wallet_alert (account_id, kind, payload, created_at, attempts)"
         " VALUES (:account, :kind, '{}', '2026-03-25 12:00:00+00:00', 0)")


def _to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = alembic_config(connection)
        if revision == BEFORE:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)
    return run


def _old_rows(connection: Connection) -> None:
    for site in ("lindenhof", "seeblick"):
        connection.execute(text(
            "INSERT INTO site (id, name, timezone, currency, country, auto_register_stations)"
            " VALUES (:id, :id, 'Europe/Berlin', 'EUR', 'DE', false)"), {"id": site})
    connection.execute(text(
        "INSERT INTO account (id, site_id, ref, name, language) VALUES"
        " ('a-01', 'lindenhof', 'a-01', 'Keller', 'de'),"
        " ('s-01', 'seeblick', 'a-01', 'Berg', 'en')"))
    connection.execute(text(ALERT), [{"account": "a-01", "kind": "low_balance"},
                                     {"account": "s-01", "kind": "supply_cut"}])


def _columns(connection: Connection) -> dict[str, bool]:
    return {c["name"]: c["nullable"] for c in inspect(connection).get_columns("wallet_alert")}


def _indexes(connection: Connection) -> dict[str, list[str | None]]:
    return {str(i["name"]): i["column_names"] for i in inspect(connection).get_indexes(
        "wallet_alert")}


def _references(connection: Connection) -> list[tuple[list[str], str]]:
    return sorted((k["constrained_columns"], k["referred_table"])
                  for k in inspect(connection).get_foreign_keys("wallet_alert"))


async def test_alerts_about_no_account_come_and_go(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: command.upgrade(alembic_config(c), BEFORE))
            await connection.run_sync(_old_rows)
        async with engine.begin() as connection:
            await connection.run_sync(_to(REVISION))
            columns = await connection.run_sync(_columns)
            assert (columns["account_id"], columns["site_id"]) == (True, True)
            indexes = await connection.run_sync(_indexes)
            assert indexes["ix_wallet_alert_site_id"] == ["site_id"]
            assert indexes["ix_wallet_alert_account_id"] == ["account_id"]
            assert indexes["ix_wallet_alert_sent_at"] == ["sent_at"]  # kept by the rebuild
            assert await connection.run_sync(_references) == [
                (["account_id"], "account"), (["site_id"], "site")]
            rows = (await connection.execute(text(
                "SELECT account_id, site_id, kind, audience FROM wallet_alert ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [
                ("a-01", "lindenhof", "low_balance", "account"),
                ("s-01", "seeblick", "supply_cut", "account")]
            await connection.execute(text(
                "INSERT INTO wallet_alert (account_id, site_id, kind, payload, created_at,"
                " attempts, audience) VALUES (NULL, 'lindenhof', 'device_fault', '{}',"
                " '2026-03-25 12:00:00+00:00', 0, 'staff')"))
        async with engine.connect() as connection:
            # The site is a foreign key: an alert cannot name a site that does not exist.
            with pytest.raises(IntegrityError):
                await connection.execute(text(
                    "INSERT INTO wallet_alert (account_id, site_id, kind, payload, created_at,"
                    " attempts) VALUES (NULL, 'atlantis', 'device_fault', '{}',"
                    " '2026-03-25 12:00:00+00:00', 0)"))
            await connection.rollback()

        async with engine.begin() as connection:
            await connection.run_sync(_to(BEFORE))
            columns = await connection.run_sync(_columns)
            assert "site_id" not in columns and columns["account_id"] is False
            assert set(await connection.run_sync(_indexes)) == {
                "ix_wallet_alert_account_id", "ix_wallet_alert_sent_at"}
            assert await connection.run_sync(_references) == [(["account_id"], "account")]
            kinds = (await connection.execute(
                text("SELECT kind FROM wallet_alert ORDER BY id"))).scalars().all()
            assert kinds == ["low_balance", "supply_cut"]
        async with engine.connect() as connection:
            with pytest.raises(IntegrityError):
                await connection.execute(text(ALERT), {"account": None, "kind": "device_fault"})
            await connection.rollback()

        async with engine.begin() as connection:
            await connection.run_sync(_to(REVISION))
            sites = (await connection.execute(
                text("SELECT site_id FROM wallet_alert ORDER BY id"))).scalars().all()
            assert sites == ["lindenhof", "seeblick"]
    finally:
        await engine.dispose()
