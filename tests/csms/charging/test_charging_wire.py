"""Money on the OCPP wire, as the exact text a station receives: one encoder, cents kept
(the `ocpp` library would have written 4.6 for 4.64)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.charging.cost_messages import cost_updated, running_cost, tariff_in_words
from csms.charging.models import ChargingStationConfig
from csms.db.engine import session_factory
from csms.ocpp.connection import Limits
from csms.ocpp.options import ServerOptions
from tests.csms.charging.conftest import (
    RawStation,
    Rig,
    close_rig,
    make_rig,
    minutes,
    stamp,
)


async def boot(raw: RawStation, protocol: str) -> None:
    if protocol == "ocpp1.6":
        payload = {"chargePointVendor": "Raw", "chargePointModel": "Wire"}
    else:
        payload = {"chargingStation": {"vendorName": "Raw", "model": "Wire"},
                   "reason": "PowerUp"}
    assert '"Accepted"' in await raw.call("BootNotification", payload)


def energy(wh: int, at: int) -> list[dict[str, object]]:
    return [{"timestamp": stamp(minutes(at)), "sampledValue": [
        {"value": wh, "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh"}}]}]


async def test_total_cost_and_cost_updated_exact_wire_201(lite: Rig) -> None:
    raw = await RawStation.open(lite.url, "WB-B-01", "ocpp2.0.1")
    try:
        await boot(raw, "ocpp2.0.1")
        base = {"triggerReason": "Authorized", "transactionInfo": {"transactionId": "w1"}}
        await raw.call("TransactionEvent", {
            **base, "eventType": "Started", "timestamp": stamp(minutes(0)), "seqNo": 0,
            "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "meterValue": energy(0, 0),
            "evse": {"id": 1, "connectorId": 1}})
        lite.clock.at(60)
        raw.calls.clear()
        await raw.call("TransactionEvent", {
            **base, "eventType": "Updated", "timestamp": stamp(minutes(60)), "seqNo": 1,
            "triggerReason": "MeterValuePeriodic", "meterValue": energy(10000, 60)})
        # Ahead of the answer on the wire: read (and answered) before the CALLRESULT came.
        assert [json.loads(call)[2] for call in raw.calls] == ["CostUpdated"]
        text = await raw.next_call("CostUpdated")
        assert text.endswith(',"CostUpdated",{"totalCost":4.64,"transactionId":"w1"}]')
        lite.clock.at(61)
        text = await raw.call("TransactionEvent", {
            **base, "eventType": "Ended", "timestamp": stamp(minutes(61)), "seqNo": 2,
            "triggerReason": "EVDeparted", "meterValue": energy(10000, 61)})
        frame = json.loads(text)
        assert text == json.dumps([3, frame[1], {"totalCost": 4.64}], separators=(",", ":"))
    finally:
        await raw.close()


async def test_cost_updated_waits_behind_an_unanswered_call_201(
    sqlite_engine: AsyncEngine,
) -> None:
    """OCPP-J: one CALL of ours outstanding at a time. While the station has not answered an
    earlier CALL, the running cost cannot go ahead of the answer: it follows the earlier CALL's
    answer instead, and the answer to the station's message is not held up by it."""
    rig = await make_rig(sqlite_engine, server_options=ServerOptions(
        port=0, limits=Limits(call_timeout_s=10), read_configuration=False, set_clock=False,
        local_lists=False))
    raw = await RawStation.open(rig.url, "WB-B-01", "ocpp2.0.1")
    try:
        await boot(raw, "ocpp2.0.1")
        base = {"triggerReason": "Authorized", "transactionInfo": {"transactionId": "w2"}}
        await raw.call("TransactionEvent", {
            **base, "eventType": "Started", "timestamp": stamp(minutes(0)), "seqNo": 0,
            "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "meterValue": energy(0, 0),
            "evse": {"id": 1, "connectorId": 1}})
        commands = rig.billing.commands
        assert commands is not None
        asked = asyncio.create_task(commands.call(
            "WB-B-01", "TriggerMessage", {"requestedMessage": "Heartbeat"}))
        trigger = json.loads(await raw.connection.recv())
        assert trigger[2] == "TriggerMessage"  # left unanswered for now
        rig.clock.at(60)
        await raw.connection.send(json.dumps([2, "u1", "TransactionEvent", {
            **base, "eventType": "Updated", "timestamp": stamp(minutes(60)), "seqNo": 1,
            "triggerReason": "MeterValuePeriodic", "meterValue": energy(10000, 60)}]))
        assert json.loads(await raw.connection.recv()) == [3, "u1", {}]
        await raw.connection.send(json.dumps([3, trigger[1], {"status": "Accepted"}]))
        cost = json.loads(await raw.connection.recv())
        assert cost[2:] == ["CostUpdated", {"totalCost": 4.64, "transactionId": "w2"}]
        await raw.connection.send(json.dumps([3, cost[1], {}]))
        assert await asked == {"status": "Accepted"}
    finally:
        await raw.close()
        await close_rig(rig)


async def test_california_pricing_messages_exact_wire_16(lite: Rig) -> None:
    async with session_factory(lite.engine)() as db:
        db.add(ChargingStationConfig(station_id="WB-A-01", california_pricing=True))
        await db.commit()
    raw = await RawStation.open(lite.url, "WB-A-01", "ocpp1.6")
    try:
        await boot(raw, "ocpp1.6")
        await raw.call("Authorize", {"idTag": "04A2B3C4"})
        price = json.loads(await raw.next_call("DataTransfer"))[3]
        assert price["vendorId"] == "org.openchargealliance.costmsg"
        assert price["messageId"] == "SetUserPrice"
        data = json.loads(price["data"])
        assert data["idToken"] == "04A2B3C4"
        assert data["priceText"].startswith("Willkommen. Tarif: Laden Lindenhof 2026: Energie ")
        reply = json.loads(await raw.call("StartTransaction", {
            "connectorId": 1, "idTag": "04A2B3C4", "meterStart": 0,
            "timestamp": stamp(minutes(0))}))
        tx = reply[2]["transactionId"]
        # The start shows the badge its price again; it may reach the station after the
        # answer to StartTransaction.
        start_price = json.loads(await raw.next_call("DataTransfer"))[3]
        assert start_price["messageId"] == "SetUserPrice"
        raw.calls.clear()
        lite.clock.at(60)
        await raw.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": stamp(minutes(60)), "sampledValue": [{"value": "10000"}]}]})
        running = json.loads(await raw.next_call("DataTransfer"))[3]
        assert running["messageId"] == "RunningCost"
        assert running["data"] == (
            f'{{"transactionId":{tx},"timestamp":"2026-03-02T17:00:00.000Z",'
            '"meterValue":10000,"cost":4.64,"state":"Charging"}')
        lite.clock.at(61)
        await raw.call("StopTransaction", {"transactionId": tx, "meterStop": 10000,
                                           "timestamp": stamp(minutes(61))})
        final = json.loads(await raw.next_call("DataTransfer"))[3]
        while final["messageId"] != "FinalCost":
            final = json.loads(await raw.next_call("DataTransfer"))[3]
        assert final["data"] == (
            f'{{"transactionId":{tx},"cost":4.64,"priceText":"Gesamt: 4,64 €"}}')
    finally:
        await raw.close()


def test_one_encoder_keeps_cents_and_whole_amounts() -> None:
    assert json.dumps(cost_updated("t", Decimal("12.34"), "EUR")) == (
        '{"totalCost": 12.34, "transactionId": "t"}')
    assert cost_updated("t", Decimal("0.00"), "EUR")["totalCost"] == 0
    assert cost_updated("t", Decimal("1.005"), "EUR")["totalCost"] == 1.0  # half-even to cents
    assert cost_updated("t", Decimal("1500"), "JPY")["totalCost"] == 1500
    data = running_cost(1, at=minutes(0), meter_wh=5, cost=Decimal("0.10"), currency="EUR",
                        charging=False)["data"]
    assert '"cost":0.1,' in data and '"state":"Idle"' in data


def test_tariff_in_words_in_the_account_language() -> None:
    tariff = {"id": "wb", "name": "Laden", "currency": "EUR", "vat_percent": "19",
              "components": [
                  {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.39"},
                                                    {"from_wh": 40000, "price": "0.29"}]},
                  {"dimension": "idle", "tiers": [{"from_s": 0, "price": "3.00"}],
                   "free_s": 3600}]}
    assert tariff_in_words(tariff, "de") == (
        "Laden: Energie 0,39 €/kWh, ab 40 kWh 0,29 €/kWh; Standzeit 3,00 €/h (1 h frei) "
        "zzgl. 19 % MwSt.")
    assert tariff_in_words(tariff, "en") == (
        "Laden: energy 0.39 €/kWh, from 40 kWh 0.29 €/kWh; idle 3.00 €/h (1 h free) "
        "plus 19 % VAT")
