"""The network as it is: retransmissions, late offline sessions, gaps, reboots, odd registers,
wrong ids, impossible clocks; and idle fees."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from ocpp.exceptions import OCPPError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from csms.bus import LocalBus
from csms.charging.models import ChargingStationConfig, SessionStatus
from csms.charging.sessions import BillingOptions, BillingService
from csms.db.engine import session_factory
from csms.inventory.models import Station
from csms.ocpp.models import MeterValue, Transaction, TransactionMessage
from csms.ocpp.server import OcppServer
from csms.simulator.station import SimStation
from rfid.registry import block_badge
from tests.csms.charging.conftest import PASSWORDS, T0, Box, Rig, close_rig, make_rig, minutes
from wallet.models import HoldRecord, JournalEntry


async def count(rig: Rig, model: type, *where: object) -> int:
    async with session_factory(rig.engine)() as db:
        return int((await db.exec(select(func.count()).select_from(model).where(*where))).one())


async def test_start_resent_after_lost_reply_gives_one_transaction(rig: Rig) -> None:
    box = await rig.box("WB-A-01")
    first = await box.start16("04A2B3C4", 100, minutes(0))
    again = await box.start16("04A2B3C4", 100, minutes(0))
    assert first.transaction_id == again.transaction_id
    assert again.id_tag_info["status"] == "Accepted"
    assert await count(rig, HoldRecord) == 1
    assert await rig.held() == Decimal("5.00")


async def test_transaction_ids_are_unique_across_nodes(engine: AsyncEngine) -> None:
    one = await make_rig(engine)
    try:
        # A second node on the same database (its own bus): site already imported.
        bus = LocalBus(node_id="n2")
        await bus.start()
        billing = BillingService(session_factory(engine), clock=one.clock)
        server = OcppServer(engine=engine, bus=bus, clock=one.clock, heartbeat_interval_s=300,
                            pending_retry_interval_s=60, options=one.server.options,
                            authorizer=billing.authorize, session_hook=billing)
        await server.start()
        a = await one.box("WB-A-01")
        sim = SimStation(f"ws://127.0.0.1:{server.port}/ocpp", "WB-B-01", protocol="ocpp1.6",
                         password=PASSWORDS["WB-B-01"])
        # WB-B-01 is a 2.0.1 station in the demo site; ids are allocated for 1.6 starts only,
        # so node two serves WB-A-01's twin: switch the row to 1.6 for this test.
        async with session_factory(engine)() as db:
            row = await db.get(Station, "WB-B-01")
            assert row is not None
            row.protocol = "ocpp1.6"
            await db.commit()
        await sim.connect()
        b = Box(sim, one.clock)
        assert await sim.boot() == "Accepted"
        starts = [a.start16("04A2B3C4", i, minutes(i), connector=1) for i in range(5)]
        starts += [b.start16("8A1F2C3D", i, minutes(i), connector=1) for i in range(5)]
        replies = await asyncio.gather(*starts)
        ids = [int(r.transaction_id) for r in replies]
        assert len(set(ids)) == 10
        await sim.close()
        await server.stop()
        await bus.stop()
    finally:
        await close_rig(one)


async def test_offline_session_of_a_badge_blocked_meanwhile_is_billed(rig: Rig) -> None:
    async with session_factory(rig.engine)() as db:
        await block_badge(db, "lindenhof", "04A2B3C4", now=T0)
        await db.commit()
    rig.clock.at(180)  # the station comes back three hours later with its queue
    box = await rig.box("WB-A-01")
    reply = await box.start16("04A2B3C4", 0, minutes(0))
    assert reply.id_tag_info["status"] == "Blocked"
    tx = int(reply.transaction_id)
    await box.meter16(tx, 6000, minutes(60))
    await box.stop16(tx, 6000, minutes(61))
    row = await rig.session(tx)
    assert row.account_id == "a-01" and "badge_blocked" in row.flags
    assert row.started_at == minutes(0)  # the station's time, not the arrival
    assert row.status == SessionStatus.COMPLETED and row.gross == Decimal("2.78")
    assert await rig.balance() == Decimal("47.22")


async def test_offline_session_of_an_unknown_badge_is_kept_and_flagged(lite: Rig) -> None:
    rig = lite
    rig.clock.at(120)
    box = await rig.box("WB-A-01")
    reply = await box.start16("DEADBEEF", 0, minutes(0))
    assert reply.id_tag_info["status"] == "Invalid"
    tx = int(reply.transaction_id)
    await box.stop16(tx, 4000, minutes(40))
    row = await rig.session(tx)
    assert row.account_id is None and "unknown_badge" in row.flags
    assert row.status == SessionStatus.COMPLETED and row.gross == Decimal("1.86")
    assert row.entry_id is None
    assert await count(rig, JournalEntry, JournalEntry.kind == "settlement") == 0


async def test_seq_gap_waits_for_the_missing_message(rig: Rig) -> None:
    box = await rig.box("WB-B-01")
    await box.event201("Started", 0, "gap", minutes(0), wh=0, state="Charging", token="04A2B3C4",
                       offline=True)
    await box.event201("Updated", 1, "gap", minutes(20), wh=3000, state="Charging", offline=True)
    reply = await box.event201("Ended", 3, "gap", minutes(61), wh=9000, state="Idle")
    row = await rig.session_by_tx("WB-B-01", "gap")
    assert row.status == SessionStatus.ENDING and {"seq_gap", "offline"} <= set(row.flags)
    # Every answer to Ended has a cost: while seqNo 2 is missing, the cost so far.
    assert Decimal(str(reply.total_cost)) == row.live_gross > 0
    assert await rig.balance() == Decimal("50.00")
    await box.event201("Updated", 2, "gap", minutes(40), wh=6000, state="SuspendedEV")
    row = await rig.session_by_tx("WB-B-01", "gap")
    assert row.status == SessionStatus.COMPLETED
    assert await rig.balance() == Decimal("50.00") - row.gross


async def test_seq_gap_never_filled_is_settled_after_the_wait(lite: Rig) -> None:
    rig = lite
    rig.billing.options = BillingOptions(gap_wait_s=600)
    box = await rig.box("WB-B-01")
    await box.event201("Started", 0, "gap2", minutes(0), wh=0, state="Charging",
                       token="04A2B3C4")
    await box.event201("Ended", 2, "gap2", minutes(30), wh=5000, state="Idle")
    assert await rig.billing.sweep() == 0
    rig.clock.at(41)
    assert await rig.billing.sweep() == 1
    row = await rig.session_by_tx("WB-B-01", "gap2")
    assert row.status == SessionStatus.COMPLETED and "seq_gap_timeout" in row.flags
    assert row.gross == Decimal("2.32")


async def test_meter_values_after_the_stop_change_nothing(lite: Rig) -> None:
    rig = lite
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    await box.stop16(tx, 5000, minutes(30))
    balance = await rig.balance()
    await box.meter16(tx, 9000, minutes(45))
    row = await rig.session(tx)
    assert "meter_after_stop" in row.flags and row.energy_wh == 5000
    assert await rig.balance() == balance


async def test_reboot_closes_the_session_from_its_last_meter_value(rig: Rig) -> None:
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    rig.clock.at(20)
    await box.meter16(tx, 4000, minutes(20))
    rig.clock.at(25)
    await box.sim.boot()  # power came back: the station reports a boot
    assert await rig.billing.sweep() == 1
    row = await rig.session(tx)
    assert row.status == SessionStatus.COMPLETED and "closed_on_reboot" in row.flags
    assert row.energy_wh == 4000 and row.ended_at == minutes(20)
    # The station's own stop, from its queue, with a later reading: billed once, as closed.
    await box.stop16(tx, 4600, minutes(24), reason="PowerLoss")
    assert await rig.balance() == Decimal("50.00") - row.gross


async def test_silent_station_closed_after_the_owner_timeout(lite: Rig) -> None:
    rig = lite
    async with session_factory(rig.engine)() as db:
        db.add(ChargingStationConfig(station_id="WB-A-01", silent_close_after_s=1800))
        await db.commit()
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    rig.clock.at(10)
    await box.meter16(tx, 2000, minutes(10))
    rig.clock.at(39)
    assert await rig.billing.sweep() == 0
    rig.clock.at(40)
    assert await rig.billing.sweep() == 1
    row = await rig.session(tx)
    assert "closed_by_timeout" in row.flags and row.energy_wh == 2000


async def test_kwh_registers_and_a_register_reset(lite: Rig) -> None:
    rig = lite
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 10000, minutes(0))).transaction_id)
    await box.meter16(tx, "12.5", minutes(10), unit="kWh")  # 12500 Wh
    await box.meter16(tx, "200", minutes(20))  # the register was reset
    await box.meter16(tx, "1200", minutes(30))
    await box.stop16(tx, 1200, minutes(31))
    row = await rig.session(tx)
    assert "register_reset" in row.flags
    assert row.energy_wh == 2500 + 1000


async def test_stop_naming_a_wrong_transaction_id_is_refused(lite: Rig) -> None:
    rig = lite
    box = await rig.box("WB-A-01")
    with pytest.raises(OCPPError) as refused:
        await box.stop16(987654, 5000, minutes(30))
    assert "987654" in str(refused.value)
    assert type(refused.value).__name__ == "PropertyConstraintViolationError"
    assert await count(rig, JournalEntry, JournalEntry.kind != "opening") == 0


async def add_foreign_transaction(rig: Rig) -> None:
    """A 1.6 transaction 4711 on record that no start of ours opened (a stop stored while
    billing was off), last reading 100 Wh."""
    async with session_factory(rig.engine)() as db:
        db.add(Transaction(station_id="WB-A-01", station_tx_id="4711", protocol="ocpp1.6",
                           evse_id=1, connector_id=1, last_meter_wh=100, start_key=None))
        await db.commit()


async def foreign_transaction(rig: Rig) -> Transaction:
    async with session_factory(rig.engine)() as db:
        return (await db.exec(select(Transaction).where(Transaction.station_tx_id == "4711"))).one()


async def test_meter_values_of_a_transaction_we_never_started_are_refused_and_stored_nowhere(
    rig: Rig
) -> None:
    box = await rig.box("WB-A-01")
    # Readings of a transaction we never started change nothing, not even its last reading.
    await add_foreign_transaction(rig)
    with pytest.raises(OCPPError) as refused:
        await box.meter16(4711, 5000, minutes(10))
    assert "4711" in str(refused.value)
    row = await foreign_transaction(rig)
    assert row.last_meter_wh == 100
    assert await count(rig, MeterValue) == 0
    # A transaction we started takes its readings: stored, and its last reading set.
    tx = int((await box.start16("04A2B3C4", 1000, minutes(20))).transaction_id)
    await box.meter16(tx, 3000, minutes(30))
    async with session_factory(rig.engine)() as db:
        ours = await db.get(Transaction, tx)
        assert ours is not None and ours.last_meter_wh == 3000
    assert await count(rig, MeterValue, MeterValue.transaction_id == tx) == 1


async def test_a_stop_ends_only_our_own_open_transaction_once(rig: Rig) -> None:
    box = await rig.box("WB-A-01")
    # A stop of a transaction we never started: refused, and nothing of it kept.
    await add_foreign_transaction(rig)
    with pytest.raises(OCPPError) as refused:
        await box.stop16(4711, 5000, minutes(10))
    assert "4711" in str(refused.value)
    row = await foreign_transaction(rig)
    assert not row.ended and row.meter_stop_wh is None and row.last_meter_wh == 100
    assert await count(rig, TransactionMessage, TransactionMessage.transaction_id == row.id) == 0
    # Ours ends with the stop; the same stop again (a retransmission) changes nothing more.
    tx = int((await box.start16("04A2B3C4", 1000, minutes(20))).transaction_id)
    await box.stop16(tx, 3000, minutes(30), reason="EVDisconnected")
    await box.stop16(tx, 3000, minutes(30), reason="EVDisconnected")
    async with session_factory(rig.engine)() as db:
        ours = await db.get(Transaction, tx)
        assert ours is not None and ours.ended and ours.meter_stop_wh == 3000
        assert ours.stop_reason == "EVDisconnected" and ours.ended_at == minutes(30)
    stops = TransactionMessage.action == "StopTransaction"
    assert await count(rig, TransactionMessage, TransactionMessage.transaction_id == tx, stops) == 1
    assert (await rig.session(tx)).energy_wh == 2000


async def test_impossible_timestamps_are_replaced_by_arrival_and_flagged(lite: Rig) -> None:
    rig = lite
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    rig.clock.at(20)
    await box.meter16(tx, 3000, T0.replace(year=1970))
    rig.clock.at(30)
    await box.meter16(tx, 4000, minutes(30) + timedelta(hours=5))
    row = await rig.session(tx)
    assert "implausible_timestamp" in row.flags
    assert row.duration_s == 30 * 60 and row.energy_wh == 4000


async def test_idle_fees_from_status_and_energy(lite: Rig) -> None:
    rig = lite
    box = await rig.box("WB-A-01")
    rig.clock.at(0)
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    await box.status16("Charging", minutes(0))
    await box.meter16(tx, 11000, minutes(60))
    await box.status16("SuspendedEV", minutes(60))  # full: plugged in, not charging
    await box.meter16(tx, 11000, minutes(120))
    await box.meter16(tx, 11000, minutes(180))
    await box.status16("Finishing", minutes(180))
    await box.stop16(tx, 11000, minutes(181))
    row = await rig.session(tx)
    assert row.idle_s == 121 * 60
    idle = [Decimal(line["net"]) for line in row.lines if line["dimension"] == "idle"]
    # 121 min idle, 60 free, 3.00/h: 3.05 net.
    assert sum(idle) == Decimal("3.0500")


async def test_idle_from_charging_state_201(lite: Rig) -> None:
    rig = lite
    box = await rig.box("WB-B-01")
    await box.event201("Started", 0, "idle", minutes(0), wh=0, state="Charging",
                       token="04A2B3C4")
    await box.event201("Updated", 1, "idle", minutes(30), wh=5500, state="SuspendedEVSE")
    await box.event201("Updated", 2, "idle", minutes(150), wh=5500, state="Charging",
                       trigger="ChargingStateChanged")
    await box.event201("Ended", 3, "idle", minutes(160), wh=7000, state="EVConnected")
    row = await rig.session_by_tx("WB-B-01", "idle")
    assert row.idle_s == 120 * 60
