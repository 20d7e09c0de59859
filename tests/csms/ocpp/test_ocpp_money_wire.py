"""The one money encoder: exact amounts on the wire, never the library's one-decimal Decimal."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from ocpp.messages import Call

from csms.ocpp.wire import call_frame, decode_frame, money_to_wire, to_plain


def test_library_trap_is_real() -> None:
    # Why the encoder exists: the ocpp library writes Decimal("12.34") as 12.3.
    assert (
        Call("1", "CostUpdated", {"totalCost": Decimal("12.34")})
        .to_json()
        .endswith('{"totalCost":12.3}]')
    )


@pytest.mark.parametrize(
    ("amount", "digits", "wire"),
    [
        (Decimal("12.34"), 2, "12.34"),
        (Decimal("12.345"), 2, "12.34"),  # banker's rounding to the minor unit
        (Decimal("12.355"), 2, "12.36"),
        (Decimal("0.10"), 2, "0.1"),
        (Decimal("7"), 2, "7"),
        (Decimal("1234567.89"), 2, "1234567.89"),
        (Decimal("5.5"), 0, "6"),
    ],
)
def test_money_to_wire_exact(amount: Decimal, digits: int, wire: str) -> None:
    frame = call_frame(
        "1", "CostUpdated", {"totalCost": money_to_wire(amount, digits), "transactionId": "t"}
    )
    assert frame == f'[2,"1","CostUpdated",{{"totalCost":{wire},"transactionId":"t"}}]'


def test_decimal_refused_on_our_wire() -> None:
    with pytest.raises(TypeError, match="money_to_wire"):
        call_frame("1", "CostUpdated", {"totalCost": Decimal("1.00")})
    with pytest.raises(TypeError):
        money_to_wire(1.5)  # type: ignore[arg-type]


def test_incoming_numbers_are_exact() -> None:
    frame = decode_frame('[2,"1","MeterValues",{"v":0.1,"w":12345678.901}]')
    assert frame[3]["v"] == Decimal("0.1") and frame[3]["w"] == Decimal("12345678.901")
    assert json.dumps(to_plain(frame[3])) == '{"v": 0.1, "w": 12345678.901}'
