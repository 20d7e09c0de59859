"""A database of the release before `billing/` migrates: a session opened under the old layout
(money columns on `charging_session`, points in `charging_point`, a hold already open) is ended
by its station after the upgrade and billed once, with the hold and the settlement key it had."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlmodel import select

import column_types
from billing import PaidUse, Point, build_usage
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import alembic_config, upgrade_database
from csms.inventory.models import Site
from csms.inventory.models import Tariff as TariffRow
from pricing import load_tariff, rate
from tests.csms.charging.conftest import T0, close_rig, make_rig, minutes
from wallet.models import JournalEntry
from wallet.service import open_hold

# The two tables as release 0701 left them (only what the test writes).
OLD_SESSION = sa.table(
    "charging_session",
    *(sa.column(name) for name in (
        "id", "station_id", "station_tx_id", "site_id", "protocol", "evse_id", "connector_id",
        "id_tag", "account_id", "auth_status", "tariff_id", "currency", "status",
        "energy_wh", "duration_s", "idle_s", "hold_id", "free", "stop_requests",
    )),
    sa.column("tariff", sa.JSON()), sa.column("lines", sa.JSON()), sa.column("flags", sa.JSON()),
    sa.column("started_at", column_types.UTCDateTime()),
    sa.column("received_at", column_types.UTCDateTime()),
    sa.column("last_message_at", column_types.UTCDateTime()),
    sa.column("live_gross", column_types.Money()),
    sa.column("meter_start_wh"), sa.column("meter_last_wh"),
)
OLD_POINT = sa.table(
    "charging_point",
    *(sa.column(name) for name in ("session_id", "source", "idx", "kind", "implausible",
                                    "register_wh")),
    sa.column("at", column_types.UTCDateTime()),
    sa.column("received_at", column_types.UTCDateTime()),
)
TRANSACTION = sa.table(
    "ocpp_transaction",
    *(sa.column(name) for name in ("id", "station_id", "station_tx_id", "protocol",
                                    "connector_id", "id_tag", "meter_start_wh", "ended",
                                    "start_key")),
    sa.column("started_at", column_types.UTCDateTime()),
    sa.column("received_at", column_types.UTCDateTime()),
)


def _inventory_head(config: Config) -> str:
    """The newest inventory revision (its chain is numbered 00xx; the other packages' branches
    start from its first revision)."""
    script = ScriptDirectory.from_config(config)
    head = "0001_inventory"
    while True:
        after = [r.revision for r in script.walk_revisions()
                 if r.down_revision == head and r.revision.startswith("00")]
        if not after:
            return head
        head = after[0]


def _upgrade_to_previous_release(connection: Connection) -> None:
    config = alembic_config(connection)
    # The inventory at its head: the demo site is imported with today's inventory models; the
    # subject here is the charging branch.
    for target in (_inventory_head(config), "wallet@head", "rfid@head", "ocpp@head",
                   "0701_charging"):
        command.upgrade(config, target)


async def test_a_session_opened_before_the_upgrade_is_billed_once_after_it(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to_previous_release)
        rig = await make_rig(engine)  # imports the demo site into the previous release's schema
        await close_rig(rig)
        async with session_factory(engine)() as db:
            tariff_row = await db.get(TariffRow, ("lindenhof", "wallbox"))
            assert tariff_row is not None
            document: dict[str, Any] = dict(tariff_row.document)
            hold = await open_hold(db, account_id="a-01", amount=Decimal("5.00"),
                                   key="charging:WB-A-01:1:hold", service="charging",
                                   reference="WB-A-01/1", at=T0, allow_partial=True)
            await db.exec(sa.insert(TRANSACTION).values(  # type: ignore[call-overload]
                id=1, station_id="WB-A-01", station_tx_id="1", protocol="ocpp1.6",
                connector_id=1, id_tag="04A2B3C4", meter_start_wh=1000, ended=False,
                start_key="old-start", started_at=T0, received_at=T0))
            await db.exec(sa.insert(OLD_SESSION).values(  # type: ignore[call-overload]
                id=1, station_id="WB-A-01", station_tx_id="1", site_id="lindenhof",
                protocol="ocpp1.6", evse_id=1, connector_id=1, id_tag="04A2B3C4",
                account_id="a-01", auth_status="Accepted", tariff_id="wallbox",
                currency="EUR", status="active", energy_wh=5000, duration_s=1800, idle_s=0,
                hold_id=hold.id, free=False, stop_requests=0, tariff=document, lines=[],
                flags=[], started_at=T0, received_at=T0, last_message_at=minutes(30),
                live_gross=Decimal("2.34"), meter_start_wh=1000, meter_last_wh=6000))
            await db.exec(sa.insert(OLD_POINT).values([  # type: ignore[call-overload]
                {"session_id": 1, "source": "WB-A-01:1:start", "idx": 0, "kind": "start",
                 "implausible": False, "register_wh": 1000, "at": T0, "received_at": T0},
                {"session_id": 1, "source": "old-meter", "idx": 1, "kind": "meter",
                 "implausible": False, "register_wh": 6000, "at": minutes(30),
                 "received_at": minutes(30)},
            ]))
            await db.commit()

        await upgrade_database(engine)

        rig = await make_rig(engine)
        try:
            rig.clock.now = T0 + timedelta(minutes=59)
            box = await rig.box("WB-A-01")
            await box.stop16(1, 11000, minutes(60))
            await box.stop16(1, 11000, minutes(60))  # a retransmission bills nothing more
            await rig.settle_commands()
            row = await rig.session(1)
            async with session_factory(engine)() as db:
                site = await db.get(Site, "lindenhof")
                assert site is not None
                tariff = load_tariff(document, site_timezone=site.timezone,
                                     site_country=site.country, site_region=site.region)
                entries = (await db.exec(select(JournalEntry).where(
                    JournalEntry.key == "charging:WB-A-01:1:settle"))).all()
            built = build_usage([Point(T0, 1000), Point(minutes(30), 6000),
                                 Point(minutes(60), 11000)], start=T0, end=minutes(60))
            assert built is not None
            expected = rate(tariff, built.usage)
            assert row.use_id == 1 and row.status == "completed" and row.energy_wh == 10000
            assert row.hold_id == hold.id and row.gross == expected.gross > 0
            assert len(entries) == 1 and row.entry_id == entries[0].id
            assert await rig.balance() == Decimal("50.00") - expected.gross
            assert await rig.held() == Decimal("0.00")
            # A session started after the upgrade gets a use of its own, numbered after it.
            tx = int((await box.start16("04A2B3C4", 20000, minutes(70))).transaction_id)
            assert (await rig.session(tx)).use_id > 1
            async with session_factory(engine)() as db:
                migrated = await db.get(PaidUse, 1)
            assert migrated is not None and migrated.badge_uid == "04A2B3C4"
            assert migrated.point_count == 3
        finally:
            await close_rig(rig)
    finally:
        await engine.dispose()
