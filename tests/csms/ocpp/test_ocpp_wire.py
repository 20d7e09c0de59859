"""CALLERRORs on the wire: the spec's codes per version, including where the `ocpp` library
gets them wrong (NotImplemented/NotSupported swapped, 1.6 FormationViolation)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.csms.ocpp.conftest import PASSWORD, Node, add_station
from tests.csms.ocpp.wsclient import BOOT16, BOOT201, exchange, open_raw

CASES_16: list[tuple[Any, list[Any]]] = [
    ("this is not json", [4, "-1", "FormationViolation"]),
    ('[2, "m1", "BootNotif', [4, "-1", "FormationViolation"]),
    ({"not": "a list"}, [4, "-1", "FormationViolation"]),
    ([2, "m2", "BootNotification"], [4, "m2", "FormationViolation"]),
    ([9, "m3", "Heartbeat", {}], [4, "m3", "FormationViolation"]),
    # An action OCPP 1.6 does not know: NotImplemented (the library sends NotSupported).
    ([2, "m4", "MakeCoffee", {}], [4, "m4", "NotImplemented"]),
    # A 1.6 action a station must not send us (known, not handled): NotSupported.
    ([2, "m5", "RemoteStartTransaction", {"idTag": "x"}], [4, "m5", "NotSupported"]),
    ([2, "m6", "BootNotification", {"chargePointVendor": "V"}], [4, "m6", "ProtocolError"]),
    ([2, "m7", "BootNotification", {**BOOT16, "color": "red"}], [4, "m7", "FormationViolation"]),
    (
        [2, "m8", "BootNotification", {**BOOT16, "chargePointModel": 7}],
        [4, "m8", "TypeConstraintViolation"],
    ),
    (
        [2, "m9", "BootNotification", {**BOOT16, "chargePointModel": "x" * 21}],
        [4, "m9", "TypeConstraintViolation"],
    ),
    (
        [
            2,
            "m10",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"},
        ],
        [4, "m10", "PropertyConstraintViolation"],
    ),
    # Before an accepted boot a station may not start transactions.
    ([2, "m11", "Authorize", {"idTag": "04A2B3C4"}], [4, "m11", "SecurityError"]),
]

CASES_201: list[tuple[Any, list[Any]]] = [
    ("this is not json", [4, "-1", "RpcFrameworkError"]),
    ([2, "m2", "BootNotification"], [4, "m2", "RpcFrameworkError"]),
    ([2, "m4", "MakeCoffee", {}], [4, "m4", "NotImplemented"]),
    (
        [
            2,
            "m5",
            "GetCertificateStatus",
            {
                "ocspRequestData": {
                    "hashAlgorithm": "SHA256",
                    "issuerNameHash": "a",
                    "issuerKeyHash": "b",
                    "serialNumber": "c",
                    "responderURL": "d",
                }
            },
        ],
        [4, "m5", "NotSupported"],
    ),
    ([2, "m6", "BootNotification", {"reason": "PowerUp"}], [4, "m6", "ProtocolError"]),
    ([2, "m7", "BootNotification", {**BOOT201, "color": "red"}], [4, "m7", "FormatViolation"]),
    (
        [2, "m8", "BootNotification", {**BOOT201, "reason": "Bored"}],
        [4, "m8", "PropertyConstraintViolation"],
    ),
    (
        [2, "m11", "Authorize", {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}}],
        [4, "m11", "SecurityError"],
    ),
]


@pytest.mark.parametrize(("protocol", "cases"), [("ocpp1.6", CASES_16), ("ocpp2.0.1", CASES_201)])
async def test_call_errors_carry_the_spec_codes(lite: Node, protocol: str, cases: list) -> None:
    await add_station(lite.engine, "WB-W", protocol=protocol)
    ws = await open_raw(lite.url, "WB-W", protocols=[protocol], password=PASSWORD)
    try:
        for frame, expected in cases:
            answer = await exchange(ws, frame)
            assert answer[:3] == expected, frame
            assert isinstance(answer[3], str) and isinstance(answer[4], dict)
    finally:
        await ws.close()


async def test_exact_wire_json_of_a_call_error(lite: Node) -> None:
    await add_station(lite.engine, "WB-X")
    ws = await open_raw(lite.url, "WB-X", password=PASSWORD)
    try:
        await ws.send('[2,"abc","MakeCoffee",{}]')
        assert await ws.recv() == (
            '[4,"abc","NotImplemented","Requested Action is not known by receiver",'
            '{"action":"MakeCoffee"}]'
        )
        await ws.send(
            '[2,"def","BootNotification",{"chargePointVendor":"V","chargePointModel":"M","x":1}]'
        )
        text = await ws.recv()
        assert text.startswith('[4,"def","FormationViolation","')
    finally:
        await ws.close()


async def test_boot_answer_on_the_wire(lite: Node) -> None:
    await add_station(lite.engine, "WB-Y", protocol="ocpp2.0.1")
    ws = await open_raw(lite.url, "WB-Y", protocols=["ocpp2.0.1"], password=PASSWORD)
    try:
        answer = await exchange(ws, [2, "b1", "BootNotification", BOOT201])
        assert answer[0:2] == [3, "b1"]
        assert answer[2]["status"] == "Accepted" and answer[2]["interval"] == 300
        assert answer[2]["currentTime"].endswith("Z")
        # Now accepted, the same Authorize is answered (unknown badge: Invalid).
        answer = await exchange(
            ws, [2, "a1", "Authorize", {"idToken": {"idToken": "FFFF", "type": "ISO14443"}}]
        )
        assert answer == [3, "a1", {"idTokenInfo": {"status": "Invalid"}}]
    finally:
        await ws.close()
