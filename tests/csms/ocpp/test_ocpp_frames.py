"""Frames no station should send: each gets the spec's CALLERROR with a specific code (never
InternalError), the connection stays open, and the database does not change (issue 13, point 3).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.csms.ocpp.conftest import PASSWORD, Node, add_station
from tests.csms.ocpp.dbdump import dump_tables
from tests.csms.ocpp.wsclient import BOOT16, BOOT201, exchange, open_raw

DEEP = "[" * 980 + "]" * 980
DIGITS = "9" * 5000
LONG_ID = "x" * 37
AT = "2026-03-02T16:00:00Z"

# (frame as sent, the answer's first three elements, a word the description must contain)
REFUSED_16: list[tuple[Any, list[Any], str]] = [
    (
        [2, "s1", "StatusNotification",
         {"connectorId": -100000000000000000000, "errorCode": "NoError", "status": "Available"}],
        [4, "s1", "TypeConstraintViolation"], "32-bit",
    ),
    (
        [2, "s2", "StatusNotification",
         {"connectorId": 2**31, "errorCode": "NoError", "status": "Available"}],
        [4, "s2", "TypeConstraintViolation"], "32-bit",
    ),
    (
        [2, "s3", "StatusNotification",
         {"connectorId": -1, "errorCode": "NoError", "status": "Available"}],
        [4, "s3", "PropertyConstraintViolation"], "negative",
    ),
    (
        [2, "t1", "StartTransaction",
         {"connectorId": 1, "idTag": "04A2B3C4", "meterStart": -1, "timestamp": AT}],
        [4, "t1", "PropertyConstraintViolation"], "meterStart",
    ),
    ([2.0, "h1", "Heartbeat", {}], [4, "h1", "FormationViolation"], "integer 2"),
    ([True, "h2", "Heartbeat", {}], [4, "h2", "FormationViolation"], "integer 2"),
    (["2", "h3", "Heartbeat", {}], [4, "h3", "FormationViolation"], "integer 2"),
    ([2, LONG_ID, "Heartbeat", {}], [4, "-1", "FormationViolation"], "36 characters"),
    ([2, 17, "Heartbeat", {}], [4, "-1", "FormationViolation"], "36 characters"),
    (
        '[2,"d1","StatusNotification",{"connectorId":' + DIGITS
        + ',"errorCode":"NoError","status":"Available"}]',
        [4, "d1", "TypeConstraintViolation"], "32-bit",
    ),
    (
        '[2,"d2","DataTransfer",{"vendorId":"x","data":' + DIGITS + "}]",
        [4, "d2", "TypeConstraintViolation"], "string",
    ),
    ('[2,"n1","DataTransfer",{"vendorId":"x","data":NaN}]', [4, "-1", "FormationViolation"],
     "NaN"),
    ('[2,"n2","Heartbeat",{"x":1e99999999999999999999}]', [4, "-1", "FormationViolation"],
     "number"),
    ('[2,"deep1","DataTransfer",{"vendorId":"x","data":' + DEEP + "}]",
     [4, "-1", "FormationViolation"], "nested"),
    (
        [2, "deep2", "DataTransfer", {"vendorId": "x", "data": json.loads("[" * 40 + "]" * 40)}],
        [4, "deep2", "FormationViolation"], "nested",
    ),
    ([7, "m1", "Heartbeat", {}], [4, "m1", "FormationViolation"], "MessageTypeId"),
]

REFUSED_201: list[tuple[Any, list[Any], str]] = [
    (
        [2, "s1", "StatusNotification",
         {"timestamp": AT, "connectorStatus": "Available", "evseId": -(2**63) - 1,
          "connectorId": 1}],
        [4, "s1", "TypeConstraintViolation"], "32-bit",
    ),
    (
        [2, "s2", "StatusNotification",
         {"timestamp": AT, "connectorStatus": "Available", "evseId": -1, "connectorId": 1}],
        [4, "s2", "PropertyConstraintViolation"], "evseId",
    ),
    ([2.0, "h1", "Heartbeat", {}], [4, "h1", "RpcFrameworkError"], "integer 2"),
    ([2, LONG_ID, "Heartbeat", {}], [4, "-1", "RpcFrameworkError"], "36 characters"),
    ([7, "m1", "Heartbeat", {}], [4, "m1", "MessageTypeNotSupported"], "MessageTypeId"),
    (
        '[2,"d1","Heartbeat",{"customData":{"vendorId":"v","n":' + DIGITS + "}}]",
        [3, "d1"], "",
    ),
    (
        '[2,"d2","TransactionEvent",{"eventType":"Started","timestamp":"' + AT
        + '","triggerReason":"Authorized","seqNo":' + DIGITS
        + ',"transactionInfo":{"transactionId":"t1"}}]',
        [4, "d2", "TypeConstraintViolation"], "seqNo",
    ),
    ('[2,"deep1","DataTransfer",{"vendorId":"x","data":' + DEEP + "}]",
     [4, "-1", "FormatViolation"], "nested"),
    (
        [2, "deep2", "DataTransfer", {"vendorId": "x", "data": json.loads("[" * 40 + "]" * 40)}],
        [4, "deep2", "FormatViolation"], "nested",
    ),
]


@pytest.mark.parametrize(
    ("protocol", "boot", "cases"),
    [("ocpp1.6", BOOT16, REFUSED_16), ("ocpp2.0.1", BOOT201, REFUSED_201)],
)
async def test_bad_frames_get_specific_errors_and_change_nothing(
    lite: Node, protocol: str, boot: dict[str, Any], cases: list[Any]
) -> None:
    await add_station(lite.engine, "WB-F", protocol=protocol)
    ws = await open_raw(lite.url, "WB-F", protocols=[protocol], password=PASSWORD)
    try:
        assert (await exchange(ws, [2, "b", "BootNotification", boot]))[0] == 3
        before = await dump_tables(lite.engine)
        for frame, expected, word in cases:
            answer = await exchange(ws, frame)
            assert answer[: len(expected)] == expected, str(frame)[:120]
            if answer[0] == 4:
                assert word in answer[3], (answer, str(frame)[:120])
            # Still open and answering.
            assert (await exchange(ws, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]
        # Heartbeats only touch last-seen in memory; rejected frames wrote nothing.
        assert await dump_tables(lite.engine) == before
    finally:
        await ws.close()


async def test_malformed_answers_are_not_answered(lite: Node) -> None:
    """A CALLRESULT or CALLERROR is never answered, not even a malformed one."""
    await add_station(lite.engine, "WB-G")
    ws = await open_raw(lite.url, "WB-G", password=PASSWORD)
    try:
        for frame in ([3, "x" * 40, {}], [3, "a"], [4, "a"], [3, 5, {}], [4, "b", 1, 2, 3, 4]):
            await ws.send(json.dumps(frame))
        assert (await exchange(ws, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]
    finally:
        await ws.close()
