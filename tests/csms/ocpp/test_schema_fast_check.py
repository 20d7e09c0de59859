"""The compiled schema check (jsonschema-rs) may only ever answer "valid" where the full one
(jsonschema, with OCPP's 32-bit integers and exact decimals) agrees: payloads built from every
schema of both versions, then bent (numbers at the edges, decimals, wrong types, extra keys).
Also the look at a frame's text that spares walking its payload for surrogates and depth."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.ocpp import wire
from csms.ocpp.events import PROTOCOL_16, PROTOCOL_201

SCHEMAS = sorted(
    (protocol, action, response)
    for protocol in (PROTOCOL_16, PROTOCOL_201)
    for action in wire.known_actions(protocol)
    for response in (False, True)
    if wire.schema_validator(protocol, action, response=response) is not None
)

ODD_NUMBERS = st.sampled_from([
    0, -1, 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**40, 0.1, 0.3, 0.30000000000000004,
    1.0, 5.0, Decimal("5"), Decimal("0.1"), Decimal("0.30000000000000000001"), Decimal("1E+2"),
    Decimal("12.3"), wire.HugeInt("123456789012345678901234567890"), float("inf"), True,
])
ANY_VALUE = st.one_of(
    ODD_NUMBERS, st.text(max_size=5), st.none(), st.just([]), st.just({}),
    st.text(min_size=20, max_size=60),
)


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@st.composite
def payloads(draw: st.DrawFn, root: dict[str, Any], node: dict[str, Any], depth: int = 0) -> Any:
    """Mostly what `node` asks for, now and then something else."""
    node = _resolve(root, node)
    if depth > 6 or draw(st.integers(0, 9)) == 0:
        return draw(ANY_VALUE)
    if "enum" in node:
        return draw(st.sampled_from(node["enum"]))
    kind = node.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        value = {
            name: draw(payloads(root, schema, depth + 1))
            for name, schema in properties.items()
            if name in required or draw(st.booleans())
        }
        if draw(st.integers(0, 19)) == 0:
            value["unexpected"] = 1
        return value
    if kind == "array":
        items = node.get("items", {})
        return [draw(payloads(root, items, depth + 1)) for _ in range(draw(st.integers(0, 3)))]
    if kind == "string":
        limit = node.get("maxLength", 30)
        return draw(st.text(min_size=0, max_size=limit + 1))
    if kind == "integer":
        return draw(st.one_of(st.integers(-(2**31) - 2, 2**31 + 1), ODD_NUMBERS))
    if kind == "number":
        return draw(st.one_of(
            st.decimals(allow_nan=False, allow_infinity=False, places=3), ODD_NUMBERS,
        ))
    if kind == "boolean":
        return draw(st.booleans())
    return draw(ANY_VALUE)


@pytest.mark.parametrize(("protocol", "action", "response"), SCHEMAS)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fast_valid_only_where_the_full_check_agrees(
    protocol: str, action: str, response: bool, data: st.DataObject
) -> None:
    schema = wire._schema(protocol, action, response=response)
    assert schema is not None
    payload = data.draw(payloads(schema.full.schema, schema.full.schema))
    if wire._fast_valid(schema, payload):
        assert list(schema.full.iter_errors(wire._floats_as_decimals(payload))) == []


def test_the_common_messages_take_the_fast_path() -> None:
    """Valid payloads of the busy actions are answered by the compiled check."""
    meter = {"connectorId": 1, "transactionId": 7, "meterValue": [{
        "timestamp": "2026-12-03T11:00:00Z",
        "sampledValue": [{"value": "12345", "measurand": "Energy.Active.Import.Register"}],
    }]}
    event = {
        "eventType": "Updated", "timestamp": "2026-12-03T11:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 3, "transactionInfo": {"transactionId": "t-1"},
        "meterValue": [{"timestamp": "2026-12-03T11:00:00Z",
                        "sampledValue": [{"value": Decimal("12.345")}]}],
    }
    cases = [
        (PROTOCOL_16, "MeterValues", meter),
        (PROTOCOL_16, "Heartbeat", {}),
        (PROTOCOL_201, "TransactionEvent", event),
    ]
    for protocol, action, payload in cases:
        schema = wire._schema(protocol, action, response=False)
        assert schema is not None
        assert wire._fast_valid(schema, payload), action
        assert wire.schema_problems(protocol, action, payload) == []
    # ...and a wrong one still gets its problems named.
    bad = {**meter, "connectorId": 2**31}
    problems = wire.schema_problems(PROTOCOL_16, "MeterValues", bad)
    assert [problem.path for problem in problems] == ["connectorId"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[2,"1","DataTransfer",{"vendorId":"\\ud800"}]', "lone surrogate"),
        ('[2,"1","DataTransfer",{"vendorId":"x","data":"\\u00e4 \\ud83d"}]', "lone surrogate"),
        ('[2,"1","DataTransfer",{"d":' + "[" * wire.MAX_DEPTH + "]" * wire.MAX_DEPTH + "}]",
         "nested deeper"),
    ],
)
def test_frames_the_text_alone_cannot_clear_are_still_read_in_full(text: str, problem: str) -> None:
    with pytest.raises(wire.FrameError, match=problem):
        wire.read_frame(text)


def test_frames_the_text_clears_are_read_as_before() -> None:
    # Brackets inside strings count too: at the limit the payload is walked and found fine.
    deep_text = '"' + "[" * (wire.MAX_DEPTH + 5) + '"'
    for text in (
        '[2,"1","DataTransfer",{"vendorId":"x","data":"Grüße \\u00e4"}]',
        '[2,"1","DataTransfer",{"vendorId":"x","data":' + deep_text + "}]",
        '[2,"1","Heartbeat",{}]',
    ):
        frame = wire.read_frame(text)
        assert frame is not None and frame.payload == json.loads(text)[3]
