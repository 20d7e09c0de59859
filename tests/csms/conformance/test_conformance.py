"""Conformance flows (issue 14), each played by a station of the `ocpp` library on a real
socket, both versions where both have the flow: a 2.0.1 Ended with clock-aligned and periodic
readings, sessions a station left open closed by what it reports, groups in every answer, a
site's limit of uses per badge, the master pass, Pending on demand, the cost in every answer to
Ended. Station certificates are played in tests/csms/ocpp/test_station_certificates.py,
reservations in tests/csms/charging/test_reservations.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import session_factory
from csms.ocpp.admin import set_boot_pending
from csms.ocpp.commands import StationGateway
from rfid.authorisation import group_token
from tests.csms.charging.conftest import (
    Box,
    Rig,
    close_rig,
    demo_document,
    make_rig,
    minutes,
    stamp,
    wait_until,
)
from wallet.accounts import account_by_ref

KELLER_1, KELLER_2, YILMAZ, MASTER = "04A2B3C4", "04A2B3C5", "8A1F2C3D", "0A0B0C0D"


def conformance_site() -> dict[str, Any]:
    """The demo site as a certification run sets it up: a plain energy price without minimum
    (a few Wh cost a fraction of a cent), one badge on many connectors, a master pass."""
    document = demo_document()
    document["site"]["max_uses_per_badge"] = 3
    document["site"]["master_pass_account"] = "hausmeister"
    document["accounts"].append({"id": "hausmeister", "name": "Hausmeister",
                                 "opening_balance": "0.00"})
    document["badges"].append({"uid": MASTER, "account": "hausmeister", "label": "Master"})
    document["tariffs"].append({"id": "plain", "name": "Nur Energie", "currency": "EUR",
                                "vat_percent": "19", "components": [
                                    {"dimension": "energy", "tiers": [
                                        {"from_wh": 0, "price": "0.39"}]}]})
    for station in document["stations"]:
        station["tariff"] = "plain"
    return document


@pytest.fixture
async def site(sqlite_engine: AsyncEngine) -> AsyncIterator[Rig]:
    rig = await make_rig(sqlite_engine, document=conformance_site())
    yield rig
    await close_rig(rig)


async def group_of(rig: Rig, ref: str, length: int) -> str:
    async with session_factory(rig.engine)() as db:
        account = await account_by_ref(db, "lindenhof", ref)
        assert account is not None
        return group_token(account.id, length)


def reading(at: Any, wh: int, context: str) -> dict[str, Any]:
    return {"timestamp": stamp(at), "sampled_value": [{
        "value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
        "unit_of_measure": {"unit": "Wh"}}]}


async def started201(box: Box, tx: str, tag: str, at: Any, evse: int = 1) -> Any:
    box.tick(at)
    return await box.call(call201.TransactionEvent(
        event_type="Started", timestamp=stamp(at), trigger_reason="Authorized", seq_no=0,
        transaction_info={"transaction_id": tx}, id_token={"id_token": tag, "type": "ISO14443"},
        evse={"id": evse, "connector_id": 1},
        meter_value=[reading(at, 1000, "Transaction.Begin")]))


# 1. A 2.0.1 Ended with clock-aligned and periodic readings before its Transaction.End reading
#    was answered InternalError (VAT below zero on a sub-cent bill) and never billed.

async def test_ended_with_clock_and_periodic_readings_is_billed_once(site: Rig) -> None:
    box = await site.box("WB-B-01")
    await started201(box, "cert-1", KELLER_1, minutes(0))
    box.tick(minutes(3))
    ended = await box.call(call201.TransactionEvent(
        event_type="Ended", timestamp=stamp(minutes(3)), trigger_reason="StopAuthorized",
        seq_no=1, transaction_info={"transaction_id": "cert-1", "stopped_reason": "Local"},
        id_token={"id_token": KELLER_1, "type": "ISO14443"}, meter_value=[
            reading(minutes(1), 1004, "Sample.Clock"),
            reading(minutes(2), 1007, "Sample.Periodic"),
            reading(minutes(3), 1010, "Transaction.End")]))
    assert ended.total_cost == 0  # 10 Wh at 0.39/kWh: 0.0039 net, 0.00 gross
    assert ended.id_token_info["status"] == "Accepted"
    view = await site.session_by_tx("WB-B-01", "cert-1")
    assert view.use.status == "completed" and view.use.energy_wh == 10
    assert (view.use.net, view.use.vat, view.use.gross) == (0, 0, 0)
    assert await site.held() == 0


# 2. Sessions left open are closed by what the station reports, each billed once.

async def test_16_connector_reported_available_closes_the_session(site: Rig) -> None:
    site.billing.options = type(site.billing.options)(
        sweep_interval_s=3600, available_grace_s=30)
    box = await site.box("WB-A-01")
    started = await box.start16(KELLER_1, 5000, minutes(0))
    await box.meter16(started.transaction_id, 6500, minutes(10))
    await box.status16("Available", minutes(11))  # the StopTransaction never comes
    box.tick(minutes(11.25))
    assert await site.billing.sweep() == 0  # within the grace a late stop may still come
    box.tick(minutes(12))
    assert await site.billing.sweep() == 1
    view = await site.session_by_tx("WB-A-01", str(started.transaction_id))
    assert view.use.status == "completed" and "closed_on_available" in view.use.flags
    assert view.use.energy_wh == 1500  # billed up to the last reading
    before = await site.balance()
    assert await site.billing.sweep() == 0 and await site.balance() == before  # once


async def test_201_a_new_transaction_on_the_evse_closes_the_old_one(site: Rig) -> None:
    box = await site.box("WB-B-01")
    await started201(box, "old", KELLER_1, minutes(0))
    await started201(box, "new", YILMAZ, minutes(30))
    assert await site.billing.sweep() == 1
    old = await site.session_by_tx("WB-B-01", "old")
    new = await site.session_by_tx("WB-B-01", "new")
    assert old.use.status == "completed" and "closed_by_new_transaction" in old.use.flags
    assert new.use.status != "completed"


async def test_201_a_silent_session_the_station_no_longer_has_is_closed(site: Rig) -> None:
    site.billing.options = type(site.billing.options)(sweep_interval_s=3600, probe_after_s=600)
    box = await site.box("WB-B-01")
    await started201(box, "kept", KELLER_1, minutes(0), evse=1)
    await started201(box, "lost", KELLER_2, minutes(0), evse=2)
    box.memory.ongoing.add("kept")
    box.tick(minutes(11))
    assert await site.billing.sweep() == 1
    asked = {p["transaction_id"] for p in box.received("GetTransactionStatus")}
    assert asked == {"kept", "lost"}
    assert "closed_not_ongoing" in (await site.session_by_tx("WB-B-01", "lost")).use.flags
    assert (await site.session_by_tx("WB-B-01", "kept")).use.status != "completed"


async def test_a_badge_is_concurrent_only_up_to_the_sites_limit(site: Rig) -> None:
    box = await site.box("WB-B-01")
    one = await started201(box, "u1", KELLER_1, minutes(0), evse=1)
    two = await started201(box, "u2", KELLER_1, minutes(1), evse=2)
    assert one.id_token_info["status"] == two.id_token_info["status"] == "Accepted"
    other = await site.box("WB-A-01")
    assert (await other.start16(KELLER_1, 0, minutes(2))).id_tag_info["status"] == "Accepted"
    # The site allows three at once: a fourth is refused, while the three are really open.
    answer = await box.call(call201.Authorize(id_token={"id_token": KELLER_1,
                                                        "type": "ISO14443"}))
    assert answer.id_token_info["status"] == "ConcurrentTx"


# 3. Groups: the household, in every answer as in the local list; the master pass.

async def test_answers_carry_the_household_as_group(site: Rig) -> None:
    a16 = await site.box("WB-A-01")
    authorized = await a16.call(call16.Authorize(id_tag=KELLER_1))
    started = await a16.start16(KELLER_2, 0, minutes(0))
    household16 = await group_of(site, "a-01", 20)
    assert authorized.id_tag_info["parent_id_tag"] == household16
    assert started.id_tag_info["parent_id_tag"] == household16
    b201 = await site.box("WB-B-01")
    answer = await b201.call(call201.Authorize(id_token={"id_token": YILMAZ,
                                                         "type": "ISO14443"}))
    assert answer.id_token_info["group_id_token"] == {
        "id_token": await group_of(site, "a-02", 36), "type": "Central"}
    event = await started201(b201, "g1", YILMAZ, minutes(1))
    assert event.id_token_info["group_id_token"]["id_token"] == await group_of(site, "a-02", 36)


async def test_the_master_pass_stops_any_session_and_starts_none(site: Rig) -> None:
    box = await site.box("WB-A-01")
    master = await box.call(call16.Authorize(id_tag=MASTER))
    assert master.id_tag_info["status"] == "Accepted"  # its wallet is empty: stopping is free
    assert master.id_tag_info["parent_id_tag"] == await group_of(site, "hausmeister", 20)
    refused = await box.start16(MASTER, 0, minutes(0))
    assert refused.id_tag_info["status"] == "Blocked"
    await box.stop16(refused.transaction_id, 0, minutes(1))
    started = await box.start16(KELLER_1, 1000, minutes(2))
    stopped = await box.stop16(started.transaction_id, 3000, minutes(20), tag=MASTER)
    assert stopped.id_tag_info["status"] == "Accepted"
    view = await site.session_by_tx("WB-A-01", str(started.transaction_id))
    assert view.use.status == "completed" and view.use.account_id is not None
    household = await group_of(site, "a-01", 64)
    assert view.use.account_id == household and view.use.gross > 0  # the household pays
    b201 = await site.box("WB-B-01")
    start = await started201(b201, "m1", MASTER, minutes(30))
    assert start.id_token_info["status"] == "Blocked"
    # 2.0.1 stations are told the master-pass group after their boot.
    await site.settle_commands()
    told = [item for payload in b201.received("SetVariables")
            for item in payload["set_variable_data"]]
    assert {"component": {"name": "AuthCtrlr"}, "variable": {"name": "MasterPassGroupId"},
            "attribute_value": await group_of(site, "hausmeister", 36)} in told


# 4. Pending on demand: re-commissioning a known station.

async def test_pending_on_demand_and_back(site: Rig) -> None:
    async with session_factory(site.engine)() as db:
        await set_boot_pending(db, "WB-B-01", True)
        await db.commit()
    box = await site.box("WB-B-01", boot=False)
    assert await box.sim.boot() == "Pending"
    # Operator commands and TriggerMessage still reach a Pending station.
    gateway = StationGateway(site.bus)
    answer = await gateway.call("WB-B-01", "TriggerMessage",
                                {"requestedMessage": "BootNotification"}, timeout=10)
    assert answer == {"status": "Accepted"}
    assert box.received("TriggerMessage")
    async with session_factory(site.engine)() as db:
        await set_boot_pending(db, "WB-B-01", False)
        await db.commit()
    assert await box.sim.boot() == "Accepted"


# 6. The cost: in every answer to Ended (the cost so far while a seqNo gap is open), and
#    CostUpdated ahead of the answer to the event that changed it.

async def test_cost_in_every_answer_to_ended_and_cost_updated_on_change(site: Rig) -> None:
    box = await site.box("WB-B-01")
    await box.event201("Started", 0, "c1", minutes(0), wh=1000, state="Charging",
                       token=KELLER_1)
    await box.event201("Updated", 1, "c1", minutes(10), wh=3000, state="Charging")
    # Ahead of the answer, or right after the server's own CALL in flight (after-boot work).
    await wait_until(lambda: box.received("CostUpdated"))
    costs = [p["total_cost"] for p in box.received("CostUpdated") if p["transaction_id"] == "c1"]
    assert costs and float(costs[-1]) == 0.93  # 2 kWh at 0.39 + 19 % VAT
    gap = await box.event201("Ended", 3, "c1", minutes(30), wh=5000, state="Idle")
    assert float(gap.total_cost) == 1.86  # seqNo 2 missing: the cost so far (to 5,000 Wh)
    await box.event201("Updated", 2, "c1", minutes(20), wh=4000, state="Charging")
    view = await site.session_by_tx("WB-B-01", "c1")
    assert view.use.status == "completed" and float(view.use.gross) == 1.86
    again = await box.event201("Ended", 3, "c1", minutes(30), wh=5000, state="Idle")
    assert float(again.total_cost) == 1.86  # a repeated Ended gets the final bill

