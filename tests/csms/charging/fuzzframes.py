"""Seeded random OCPP frames a broken or hostile station might send: valid actions
with mutated payloads (wrong types, huge or negative numbers, missing or extra fields), wrong
MessageTypeIds, long or missing MessageIds, deep nesting, numbers JSON cannot hold, non-JSON.

Values JSON text cannot carry through `json.dumps` (5,000-digit integers, NaN, nesting deeper
than Python's recursion limit) are drawn as markers and put into the text afterwards.
"""

from __future__ import annotations

import json
import random
from typing import Any

AT = "2026-03-02T16:00:00Z"
TAG = "04A2B3C4"

_ENERGY16 = [{"timestamp": AT, "sampledValue": [
    {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]
_ENERGY201 = [{"timestamp": AT, "sampledValue": [
    {"value": 1000, "measurand": "Energy.Active.Import.Register",
     "unitOfMeasure": {"unit": "Wh"}}]}]
_TX201 = {"triggerReason": "Authorized", "timestamp": AT,
          "transactionInfo": {"transactionId": "f1"},
          "evse": {"id": 1, "connectorId": 1}, "meterValue": _ENERGY201}

TEMPLATES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "ocpp1.6": [
        ("Heartbeat", {}),
        ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
        ("Authorize", {"idTag": TAG}),
        ("StartTransaction", {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": AT}),
        ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": _ENERGY16}),
        ("StopTransaction", {"transactionId": 1, "meterStop": 500, "timestamp": AT,
                             "transactionData": _ENERGY16}),
        ("DataTransfer", {"vendorId": "x", "data": "y"}),
        ("FirmwareStatusNotification", {"status": "Idle"}),
        ("DiagnosticsStatusNotification", {"status": "Idle"}),
        ("SecurityEventNotification", {"type": "x", "timestamp": AT}),
        ("MakeCoffee", {}),
    ],
    "ocpp2.0.1": [
        ("Heartbeat", {}),
        ("BootNotification", {"chargingStation": {"vendorName": "V", "model": "M"},
                              "reason": "PowerUp"}),
        ("StatusNotification", {"timestamp": AT, "connectorStatus": "Available", "evseId": 1,
                                "connectorId": 1}),
        ("Authorize", {"idToken": {"idToken": TAG, "type": "ISO14443"}}),
        ("TransactionEvent", {**_TX201, "eventType": "Started", "seqNo": 0,
                              "idToken": {"idToken": TAG, "type": "ISO14443"}}),
        ("TransactionEvent", {**_TX201, "eventType": "Updated", "seqNo": 1}),
        ("TransactionEvent", {**_TX201, "eventType": "Ended", "seqNo": 2,
                              "transactionInfo": {"transactionId": "f1",
                                                  "stoppedReason": "Local"}}),
        ("MeterValues", {"evseId": 1, "meterValue": _ENERGY201}),
        ("DataTransfer", {"vendorId": "x", "data": {"a": [1, 2]}}),
        ("FirmwareStatusNotification", {"status": "Idle"}),
        ("LogStatusNotification", {"status": "Idle"}),
        ("SecurityEventNotification", {"type": "x", "timestamp": AT}),
        ("NotifyEvent", {"generatedAt": AT, "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": AT, "trigger": "Alerting", "actualValue": "1",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "C"}, "variable": {"name": "V"}}]}),
        ("MakeCoffee", {}),
    ],
}

# Raw JSON text put in place of a marker string after encoding.
_RAW = {
    "@@HUGE@@": "9" * 5000,
    "@@NEGHUGE@@": "-" + "7" * 400,
    "@@NAN@@": "NaN",
    "@@INF@@": "-Infinity",
    "@@BIGEXP@@": "1e99999999999999999999",
    "@@DEEP@@": "[" * 3000 + "]" * 3000,
    "@@DEEP40@@": "{\"a\":" * 40 + "1" + "}" * 40,
}

_BOUNDARIES = [-1, 0, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**20,
               -(10**20), -100000000000000000000]
_FLOATS = [-1e12, 1e300, -1e300, 5e-324, 0.1, -0.0, 1e13, 12.345678901234567]
# Quotes, escapes, control characters, a lone surrogate, non-Latin text.
_ALPHABET = "aZ09 _-.:/\"'\\\n\t\x00\x7f\u00e9\u20ac\u4e2d\U0001f50c\ud800"


def text(rng: random.Random, low: int = 0, high: int = 40) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(low, high)))


def junk(rng: random.Random) -> Any:
    """A JSON value of any type, often at a boundary (markers become raw text later)."""
    kind = rng.randrange(10)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(2 ** rng.randint(1, 70)), 2 ** rng.randint(1, 70))
    if kind == 3:
        return rng.choice(_BOUNDARIES)
    if kind == 4:
        return rng.choice([*_FLOATS, rng.uniform(-1e6, 1e6), rng.uniform(-1e300, 1e300)])
    if kind == 5:
        return text(rng)
    if kind == 6:
        return rng.choice(list(_RAW))
    if kind == 7:
        return [junk(rng) for _ in range(rng.randint(0, 3))]
    if kind == 8:
        return {text(rng, 1, 6): junk(rng) for _ in range(rng.randint(0, 2))}
    return str(rng.choice(_BOUNDARIES))


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            paths += _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += _leaves(child, (*path, index))
    return paths


def _replaced(value: Any, path: tuple[Any, ...], new: Any, *, delete: bool = False) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    head, rest = path[0], path[1:]
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replaced(copy[head], rest, new, delete=delete)
    return copy


def payload(rng: random.Random, protocol: str) -> tuple[str, Any]:
    """A valid action with 0 to 3 mutations of its payload."""
    action, value = rng.choice(TEMPLATES[protocol])
    for _ in range(rng.randint(0, 3)):
        paths = _leaves(value)
        how = rng.choice(["replace", "replace", "replace", "delete", "extra", "whole"])
        if how == "whole" or not paths:
            value = junk(rng) if rng.random() < 0.5 else {}
        elif how == "replace":
            value = _replaced(value, rng.choice(paths), junk(rng))
        elif how == "delete":
            value = _replaced(value, rng.choice(paths), None, delete=True)
        elif isinstance(value, dict):
            value = {**value, text(rng, 1, 8): junk(rng)}
    return action, value


def frame(rng: random.Random, protocol: str) -> str | bytes:
    """One websocket message: mostly CALLs of mutated payloads, some broken frames, some
    messages that are not JSON at all."""
    shape = rng.choice(["call"] * 8 + ["frame", "frame", "text", "bytes"])
    if shape == "text":
        return text(rng, 0, 60).replace("\ud800", "?")  # a websocket text frame is UTF-8
    if shape == "bytes":
        return rng.randbytes(rng.randint(0, 60))
    action, value = payload(rng, protocol)
    message: list[Any] = [2, text(rng, 1, 36), action, value]
    if shape == "frame":
        where = rng.choice(["kind", "id", "length", "action"])
        if where == "kind":
            message[0] = rng.choice(
                [2.0, "2", True, False, 0, 1, 3, 4, 5, 7, -2, None, 2**70, "@@HUGE@@", [2]])
        elif where == "id":
            message[1] = text(rng, 37, 80) if rng.random() < 0.5 else junk(rng)
        elif where == "length":
            message = message[: rng.randint(0, 3)] + [junk(rng) for _ in range(rng.randint(0, 2))]
        else:
            message[2] = junk(rng)
    encoded = json.dumps(message)
    for marker, raw in _RAW.items():
        encoded = encoded.replace(json.dumps(marker), raw)
    return encoded


def generate(protocol: str, count: int, seed: int) -> list[str | bytes]:
    """`count` messages, the same for the same seed on every run."""
    rng = random.Random(f"{seed}:{protocol}")
    return [frame(rng, protocol) for _ in range(count)]
