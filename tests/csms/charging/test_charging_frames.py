"""Absurd numbers from a station with billing plugged in: refused with the spec's code or
dropped, never an InternalError, the wallet untouched (issue 13, point 3)."""

from __future__ import annotations

import asyncio
import json

from tests.csms.charging.conftest import RawStation, Rig, minutes, stamp
from tests.csms.charging.test_charging_wire import boot
from tests.csms.ocpp.dbdump import dump_tables

TAG = "04A2B3C4"


async def settled(rig: Rig, raw: RawStation, station_id: str) -> None:
    """Answer the server's own calls after the boot until its follow-up work is done."""
    connection = rig.server.connection(station_id)
    assert connection is not None
    for _ in range(100):
        await raw.call("Heartbeat", {})
        # After-boot work runs in the server's queue (csms.ocpp.after_boot).
        if not connection._tasks and rig.server.after_boot.pending == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("after-boot work did not finish")


async def test_absurd_numbers_16(lite: Rig) -> None:
    raw = await RawStation.open(lite.url, "WB-A-01", "ocpp1.6")
    try:
        await boot(raw, "ocpp1.6")
        await settled(lite, raw, "WB-A-01")
        before = await dump_tables(lite.engine)
        answer = json.loads(await raw.call("StatusNotification", {
            "connectorId": -100000000000000000000, "errorCode": "NoError",
            "status": "Available"}))
        assert answer[2] == "TypeConstraintViolation" and "32-bit" in answer[3]
        answer = json.loads(await raw.call("StartTransaction", {
            "connectorId": 1, "idTag": TAG, "meterStart": -1, "timestamp": stamp(minutes(0))}))
        assert answer[2:4] == ["PropertyConstraintViolation", "meterStart: -1 must not be negative"]
        await lite.settle_commands()
        assert await dump_tables(lite.engine) == before
    finally:
        await raw.close()


async def test_absurd_numbers_201(lite: Rig) -> None:
    raw = await RawStation.open(lite.url, "WB-B-01", "ocpp2.0.1")
    try:
        await boot(raw, "ocpp2.0.1")
        await settled(lite, raw, "WB-B-01")
        before = await dump_tables(lite.engine)
        answer = json.loads(await raw.call("StatusNotification", {
            "timestamp": stamp(minutes(0)), "connectorStatus": "Available",
            "evseId": -(2**63) - 1, "connectorId": 1}))
        assert answer[2] == "TypeConstraintViolation" and "evseId" in answer[3]
        await lite.settle_commands()
        assert await dump_tables(lite.engine) == before
        # A negative energy register is a broken meter: the reading is dropped, the
        # transaction starts, nothing is billed for it.
        balance = await lite.balance()
        answer = json.loads(await raw.call("TransactionEvent", {
            "eventType": "Started", "timestamp": stamp(minutes(0)),
            "triggerReason": "Authorized", "seqNo": 0, "transactionInfo": {"transactionId": "n1"},
            "idToken": {"idToken": TAG, "type": "ISO14443"}, "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": stamp(minutes(0)), "sampledValue": [{
                "value": -1e12, "measurand": "Energy.Active.Import.Register",
                "context": "Transaction.Begin"}]}]}))
        assert answer[0] == 3 and answer[2]["idTokenInfo"]["status"] == "Accepted"
        await lite.settle_commands()
        assert await lite.balance() == balance
    finally:
        await raw.close()
