"""The OCPP-J wire: frames, CALLERROR codes per version, schema checks, the one money encoder.

Everything here corrects or avoids a trap of the `ocpp` library (STYLE.md, "Known traps"):

* its encoder writes every `Decimal` as `float("%.1f" % value)`: we never hand it a Decimal,
  our frames are encoded by `encode_frame`, which refuses one, and money goes through
  `money_to_wire` (quantised to the currency's minor unit, then a float);
* it swaps NotImplemented and NotSupported and names the 1.6 code `FormatViolation`:
  `error_code` gives the spec's name per version.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
import ocpp
from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from csms.ocpp.events import PROTOCOL_16, PROTOCOL_201

CALL, CALLRESULT, CALLERROR = 2, 3, 4

# Which message ids to answer when a frame is unreadable (OCPP 2.0.1 part 4, 4.2.3).
UNKNOWN_MESSAGE_ID: Final = "-1"
# OCPP-J 1.6 section 4.1.3 and 2.0.1 part 4 section 4.1.4: a MessageId has at most 36 characters.
MAX_MESSAGE_ID_LENGTH: Final = 36
# OCPP payloads nest a handful of levels (NotifyReport, the deepest, about seven); anything much
# deeper is refused before a recursive step (schema check, storage) can trip over it.
MAX_DEPTH: Final = 32
# OCPP 2.0.1 part 2, primitive datatypes: "integer: 32 bit (31 bits + sign)". 1.6 names no
# width; its reference implementations use 32-bit ints as well, and so do we.
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
# Integer literals with more digits are kept as exact decimals (`HugeInt`), never converted to
# int: Python refuses int() of more than 4,300 digits, and no OCPP integer needs 20.
MAX_INT_DIGITS: Final = 20


class ErrorKind:
    """Our names for the situations; `error_code()` maps them to each version's code."""

    UNKNOWN_ACTION = "unknown_action"
    MESSAGE_TYPE = "message_type"
    UNSUPPORTED_ACTION = "unsupported_action"
    FORMAT = "format"
    RPC_FRAMEWORK = "rpc_framework"
    PROTOCOL = "protocol"
    PROPERTY = "property"
    TYPE = "type"
    OCCURRENCE = "occurrence"
    SECURITY = "security"
    INTERNAL = "internal"
    GENERIC = "generic"


_CODES: Final[dict[str, dict[str, str]]] = {
    PROTOCOL_16: {
        # OCPP-J 1.6, 4.2.3: NotImplemented = "Requested Action is not known by receiver",
        # NotSupported = "recognized but not supported". The ocpp library has them swapped.
        ErrorKind.UNKNOWN_ACTION: "NotImplemented",
        ErrorKind.UNSUPPORTED_ACTION: "NotSupported",
        # 1.6 spells it FormationViolation (errata: a known issue that will not be fixed).
        ErrorKind.FORMAT: "FormationViolation",
        ErrorKind.RPC_FRAMEWORK: "FormationViolation",
        # 1.6 has no code for an unknown MessageTypeId: the frame is not a valid one.
        ErrorKind.MESSAGE_TYPE: "FormationViolation",
        ErrorKind.PROTOCOL: "ProtocolError",
        ErrorKind.PROPERTY: "PropertyConstraintViolation",
        ErrorKind.TYPE: "TypeConstraintViolation",
        ErrorKind.OCCURRENCE: "OccurenceConstraintViolation",
        ErrorKind.SECURITY: "SecurityError",
        ErrorKind.INTERNAL: "InternalError",
        ErrorKind.GENERIC: "GenericError",
    },
    PROTOCOL_201: {
        ErrorKind.UNKNOWN_ACTION: "NotImplemented",
        ErrorKind.UNSUPPORTED_ACTION: "NotSupported",
        ErrorKind.FORMAT: "FormatViolation",
        ErrorKind.RPC_FRAMEWORK: "RpcFrameworkError",
        ErrorKind.MESSAGE_TYPE: "MessageTypeNotSupported",
        ErrorKind.PROTOCOL: "ProtocolError",
        ErrorKind.PROPERTY: "PropertyConstraintViolation",
        ErrorKind.TYPE: "TypeConstraintViolation",
        ErrorKind.OCCURRENCE: "OccurrenceConstraintViolation",
        ErrorKind.SECURITY: "SecurityError",
        ErrorKind.INTERNAL: "InternalError",
        ErrorKind.GENERIC: "GenericError",
    },
}

_DESCRIPTIONS: Final = {
    ErrorKind.UNKNOWN_ACTION: "Requested Action is not known by receiver",
    ErrorKind.UNSUPPORTED_ACTION: "Requested Action is recognized but not supported by receiver",
    ErrorKind.MESSAGE_TYPE: "MessageTypeId is not supported",
    ErrorKind.FORMAT: "Payload for Action is syntactically incorrect",
    ErrorKind.RPC_FRAMEWORK: "Content of the call is not a valid RPC request",
    ErrorKind.PROTOCOL: "Payload for Action is incomplete",
    ErrorKind.PROPERTY: "A field contains an invalid value",
    ErrorKind.TYPE: "A field violates data type constraints",
    ErrorKind.OCCURRENCE: "A field violates occurrence constraints",
    ErrorKind.SECURITY: "Not allowed before the station is accepted",
    ErrorKind.INTERNAL: "An internal error occurred",
    ErrorKind.GENERIC: "Error",
}


def error_code(protocol: str, kind: str) -> str:
    return _CODES[protocol][kind]


class OcppCallError(Exception):
    """Raised by a handler (or our validation) to answer a CALL with a CALLERROR."""

    def __init__(self, kind: str, description: str | None = None, **details: Any) -> None:
        super().__init__(description or _DESCRIPTIONS[kind])
        self.kind = kind
        self.description = description or _DESCRIPTIONS[kind]
        self.details = details


@dataclass(frozen=True, slots=True)
class CallErrorReply:
    """A station's CALLERROR to one of our calls."""

    code: str
    description: str
    details: dict[str, Any]


class StationCallError(Exception):
    """The station answered our CALL with a CALLERROR."""

    def __init__(self, station_id: str, action: str, reply: CallErrorReply) -> None:
        super().__init__(f"{station_id} answered {action} with {reply.code}: {reply.description}")
        self.station_id = station_id
        self.action = action
        self.reply = reply


# frames


def _refuse_decimal(value: Any) -> Any:
    raise TypeError(
        f"{type(value).__name__} on the OCPP wire: convert money with money_to_wire(), "
        "other numbers to int or float"
    )


def encode_frame(frame: list[Any]) -> str:
    text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=_refuse_decimal)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a station may send one, escaped, in a MessageId or a field we
        # quote back) cannot go out as UTF-8: escaped, it is what the station sent.
        text = json.dumps(frame, separators=(",", ":"), default=_refuse_decimal)
    return text


def call_frame(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    return encode_frame([CALL, unique_id, action, payload])


def result_frame(unique_id: str, payload: dict[str, Any]) -> str:
    return encode_frame([CALLRESULT, unique_id, payload])


def error_frame(
    protocol: str, unique_id: str, kind: str, description: str, details: dict[str, Any]
) -> str:
    return encode_frame([CALLERROR, unique_id, error_code(protocol, kind), description, details])


class HugeInt(Decimal):
    """An integer literal too long for an OCPP integer, kept exact: schema checks refuse it
    where an integer is wanted, `to_decimal` where a plausible number is."""

    __slots__ = ()


class FrameError(Exception):
    """A frame that is not a readable OCPP-J message: the CALLERROR it gets, and the id to use."""

    def __init__(self, kind: str, description: str, unique_id: str = UNKNOWN_MESSAGE_ID) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.unique_id = unique_id


def _parse_int(text: str) -> int | Decimal:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        return HugeInt(text)
    return int(text)


def _parse_float(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK, "not valid JSON: a number beyond any decimal range"
        ) from None


def _refuse_constant(name: str) -> Any:
    raise FrameError(ErrorKind.RPC_FRAMEWORK, f"not valid JSON: {name} is not a JSON number")


def decode_frame(text: str | bytes) -> Any:
    """JSON with exact decimals (`parse_float=Decimal`), so meter values never pass a float.

    Raises FrameError for what is not JSON (with NaN and Infinity, which JSON does not have)
    and for nesting too deep to read; integers of more than 20 digits become `HugeInt`.
    """
    try:
        return json.loads(
            text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise FrameError(ErrorKind.FORMAT, f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise FrameError(ErrorKind.RPC_FRAMEWORK, "not valid JSON") from None


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def payload_problem(value: Any, max_depth: int) -> str | None:
    """Why a decoded payload cannot be taken as it is (None if it can): lists and objects
    nested deeper than `max_depth`, or text with a lone surrogate (JSON's `\\ud800` escape),
    which is no Unicode character and cannot be stored. Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _is_utf8(item):
                return "text with a lone surrogate (\\ud800-\\udfff) is not Unicode"
            continue
        if isinstance(item, dict):
            if not all(_is_utf8(key) for key in item):
                return "a key with a lone surrogate (\\ud800-\\udfff) is not Unicode"
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return f"nested deeper than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def _plainly_fine(text: str | bytes) -> bool:
    """True when the frame's text alone shows that `payload_problem` would find nothing: no
    \\u escape and no surrogate in the text itself (a lone one can only come as an escape from
    websockets, which decodes UTF-8 strictly) and too few brackets, even counted inside strings,
    to nest deeper than allowed."""
    if isinstance(text, bytes):
        return False
    return (
        "\\u" not in text
        and text.count("[") + text.count("{") <= MAX_DEPTH
        and _is_utf8(text)
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """One OCPP-J message as received: a CALL (action, payload), a CALLRESULT (payload) or a
    CALLERROR (error)."""

    message_type: int
    unique_id: str
    action: str | None = None
    payload: Any = None
    error: CallErrorReply | None = None


def read_frame(text: str | bytes) -> Frame | None:
    """The frame in a websocket message; None for an answer (CALLRESULT or CALLERROR) that is
    malformed, which is never answered. Raises FrameError with the CALLERROR a CALL gets.
    """
    frame = decode_frame(text)
    if not isinstance(frame, list) or not frame:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, "expected [MessageTypeId, MessageId, ...]")
    kind = frame[0]
    # `2.0`, `true` or "2" are not the integer 2 (Decimal("2.0") == 2, True == 1 in Python).
    is_int = type(kind) is int
    if is_int and kind in (CALLRESULT, CALLERROR):
        return _read_answer(frame)
    unique_id = frame[1] if len(frame) > 1 else None
    if not isinstance(unique_id, str) or len(unique_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK,
            f"MessageId must be a string of at most {MAX_MESSAGE_ID_LENGTH} characters",
        )
    if not is_int:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK, "MessageTypeId must be the integer 2, 3 or 4", unique_id
        )
    if kind != CALL:
        raise FrameError(ErrorKind.MESSAGE_TYPE, f"unknown MessageTypeId {kind}", unique_id)
    if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
        raise FrameError(ErrorKind.RPC_FRAMEWORK, "a CALL is [2, id, action, {payload}]", unique_id)
    problem = None if _plainly_fine(text) else payload_problem(frame[3], MAX_DEPTH - 1)
    if problem is not None:
        raise FrameError(ErrorKind.FORMAT, problem, unique_id)
    return Frame(CALL, unique_id, frame[2], frame[3])


def _read_answer(frame: list[Any]) -> Frame | None:
    unique_id = frame[1] if len(frame) > 1 else None
    if not isinstance(unique_id, str) or len(unique_id) > MAX_MESSAGE_ID_LENGTH:
        return None
    if frame[0] == CALLRESULT:
        return Frame(CALLRESULT, unique_id, payload=frame[2]) if len(frame) == 3 else None
    if len(frame) < 4:
        return None
    details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
    return Frame(
        CALLERROR, unique_id, error=CallErrorReply(str(frame[2])[:64], str(frame[3])[:512], details)
    )


# money

# ISO 4217 minor units of the currencies a site may use; two for any other.
_MINOR_UNITS: Final = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3}


def minor_units(currency: str | None) -> int:
    return _MINOR_UNITS.get((currency or "").upper(), 2)


def money_to_wire(amount: Decimal, minor_unit_digits: int = 2) -> float | int:
    """The one money encoder: quantise to the currency's minor unit, then a JSON number.

    A float with at most `minor_unit_digits` decimals round-trips exactly through `repr`, so the
    wire shows 12.34 for Decimal("12.34"), never 12.3 (the library's Decimal rounding).
    """
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    quantum = Decimal(1).scaleb(-minor_unit_digits)
    exact = amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if exact == exact.to_integral_value():
        return int(exact)
    return float(exact)


# schema validation


_SCHEMA_DIRS: Final = {
    PROTOCOL_16: Path(ocpp.__file__).parent / "v16" / "schemas",
    PROTOCOL_201: Path(ocpp.__file__).parent / "v201" / "schemas",
}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} characters)"


def _type_within_range(
    validator: Validator, types: Any, instance: Any, schema: dict[str, Any]
) -> Any:
    """Draft 4's `type`, where an OCPP integer is a 32-bit signed integer."""
    wanted = [types] if isinstance(types, str) else list(types)
    if "integer" in wanted and not (set(wanted) & {"number", "string"}):
        huge = isinstance(instance, HugeInt)
        if huge or (type(instance) is int and not INT32_MIN <= instance <= INT32_MAX):
            yield ValidationError(
                f"{_short(instance)} is outside the 32-bit integer range [{INT32_MIN}, {INT32_MAX}]"
            )
            return
    for error in Draft4Validator.VALIDATORS["type"](validator, types, instance, schema):
        # The library's message quotes the whole value; a long one says nothing more.
        error.message = f"{_short(instance)} is not of type {' or '.join(wanted)}"
        yield error


_OcppValidator = validators.extend(Draft4Validator, {"type": _type_within_range})


@dataclass(frozen=True, slots=True)
class _Schema:
    """An action's schema, checked twice over: `fast` (jsonschema-rs, compiled, about 1 µs)
    answers the common case, that a payload is valid; `full` (jsonschema, about 200 µs) has the
    last word on everything else and names the problems."""

    full: Validator
    fast: Any
    multiple_of: bool


_schemas: dict[tuple[str, str, bool], _Schema | None] = {}


def _schema(protocol: str, action: str, *, response: bool) -> _Schema | None:
    key = (protocol, action, response)
    if key not in _schemas:
        if protocol == PROTOCOL_16:
            name = f"{action}Response.json" if response else f"{action}.json"
        else:
            name = f"{action}Response.json" if response else f"{action}Request.json"
        path = _SCHEMA_DIRS[protocol] / name
        if not action.isalnum() or not path.is_file():
            _schemas[key] = None
        else:
            text = path.read_text(encoding="utf-8-sig")
            schema = json.loads(text, parse_float=Decimal)
            # Both drafts' schemas are read as draft 4, as `full` reads them.
            fast = jsonschema_rs.Draft4Validator(json.loads(text), validate_formats=False)
            _schemas[key] = _Schema(_OcppValidator(schema), fast, "multipleOf" in text)
    return _schemas[key]


class _NotFast(Exception):
    """The payload holds a value the fast check could judge differently from the full one."""


def _for_fast_check(value: Any, exact_numbers: bool) -> Any:
    """The payload as the fast check may see it: integers within 32 bits as they are, other
    numbers as the floats that name them exactly; raises _NotFast for anything else (a huge
    integer, a decimal no float names exactly, any fraction where the schema has `multipleOf`),
    which the full check then judges."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if not INT32_MIN <= value <= INT32_MAX:
            raise _NotFast
        return value
    if kind is dict:
        return {key: _for_fast_check(item, exact_numbers) for key, item in value.items()}
    if kind is list:
        return [_for_fast_check(item, exact_numbers) for item in value]
    if exact_numbers:
        raise _NotFast
    if kind is float:
        if math.isfinite(value):
            return value
    elif kind is Decimal:
        as_float = float(value)
        if math.isfinite(as_float) and Decimal(repr(as_float)) == value:
            return as_float
    raise _NotFast


def _fast_valid(schema: _Schema, payload: Any) -> bool:
    """True when the payload is certainly valid; False means "ask the full check"."""
    try:
        return bool(schema.fast.is_valid(_for_fast_check(payload, schema.multiple_of)))
    except (_NotFast, ValueError, TypeError, UnicodeError, OverflowError):
        return False


def schema_validator(protocol: str, action: str, *, response: bool) -> Validator | None:
    """The `ocpp` library's JSON schema for an action (None if it has none), decimals exact.

    Schemas and payloads are both read with `parse_float=Decimal`, so `multipleOf: 0.1` checks
    are exact (the library does this for three 1.6 actions only).
    """
    schema = _schema(protocol, action, response=response)
    return schema.full if schema is not None else None


def _floats_as_decimals(value: Any) -> Any:
    """Payloads we build (from the API's JSON, from settings) may hold floats; the schemas'
    `multipleOf` is a Decimal, and `float % Decimal` raises. Each float is checked as the
    decimal its shortest text names (0.1 as 0.1), which is what goes on the wire."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _floats_as_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats_as_decimals(item) for item in value]
    return value


def known_actions(protocol: str) -> frozenset[str]:
    suffix = ".json" if protocol == PROTOCOL_16 else "Request.json"
    return frozenset(
        path.name.removesuffix(suffix)
        for path in _SCHEMA_DIRS[protocol].glob(f"*{suffix}")
        if not path.name.endswith("Response.json")
    )


_KIND_BY_VALIDATOR: Final = {
    "type": ErrorKind.TYPE,
    "maxLength": ErrorKind.TYPE,
    "minLength": ErrorKind.TYPE,
    "required": ErrorKind.PROTOCOL,
    "minItems": ErrorKind.OCCURRENCE,
    "maxItems": ErrorKind.OCCURRENCE,
    "enum": ErrorKind.PROPERTY,
    "minimum": ErrorKind.PROPERTY,
    "maximum": ErrorKind.PROPERTY,
    "multipleOf": ErrorKind.PROPERTY,
    "pattern": ErrorKind.PROPERTY,
    "format": ErrorKind.PROPERTY,
    "additionalProperties": ErrorKind.FORMAT,
}


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    kind: str
    path: str
    message: str

    def as_text(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def schema_problems(
    protocol: str, action: str, payload: Any, *, response: bool = False
) -> list[SchemaProblem]:
    """Every schema violation with its JSON path; [] if valid. Raises KeyError for no schema."""
    schema = _schema(protocol, action, response=response)
    if schema is None:
        raise KeyError(action)
    if _fast_valid(schema, payload):
        return []
    problems = []
    errors: list[ValidationError] = sorted(
        schema.full.iter_errors(_floats_as_decimals(payload)),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    for error in errors:
        path = ".".join(str(part) for part in error.absolute_path)
        kind = _KIND_BY_VALIDATOR.get(str(error.validator), ErrorKind.FORMAT)
        problems.append(SchemaProblem(kind, path, error.message))
    return problems


# Fields the schemas leave unbounded although a negative value has no meaning: ids of EVSEs and
# connectors (0 is the station itself) and energy registers, which only count up from zero.
_NON_NEGATIVE: Final[dict[str, dict[str, tuple[tuple[str, ...], ...]]]] = {
    PROTOCOL_16: {
        "StatusNotification": (("connectorId",),),
        "MeterValues": (("connectorId",),),
        "StartTransaction": (("connectorId",), ("meterStart",)),
        "StopTransaction": (("meterStop",),),
    },
    PROTOCOL_201: {
        "StatusNotification": (("evseId",), ("connectorId",)),
        "MeterValues": (("evseId",),),
        "TransactionEvent": (("evse", "id"), ("evse", "connectorId"), ("seqNo",)),
    },
}


def value_problems(protocol: str, action: str, payload: Any) -> list[SchemaProblem]:
    """What a schema-valid request says that cannot be true (a negative connector id or
    register); the kind is PropertyConstraintViolation."""
    problems = []
    for path in _NON_NEGATIVE.get(protocol, {}).get(action, ()):
        value: Any = payload
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if type(value) is int and value < 0:
            problems.append(
                SchemaProblem(ErrorKind.PROPERTY, ".".join(path), f"{value} must not be negative")
            )
    return problems


def check_payload(protocol: str, action: str, payload: Any, *, response: bool = False) -> None:
    """Raise OcppCallError with the first problem's kind and every problem listed."""
    problems = schema_problems(protocol, action, payload, response=response)
    if not problems and not response:
        problems = value_problems(protocol, action, payload)
    if problems:
        raise OcppCallError(
            problems[0].kind,
            problems[0].as_text()[:500],
            problems=[p.as_text()[:200] for p in problems[:10]],
        )


# values


def parse_timestamp(value: Any) -> datetime | None:
    """RFC 3339 text to an aware UTC datetime; None for missing or unreadable values."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # OCPP requires UTC; stations that omit the zone mean UTC in practice.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def wire_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A meter register or power beyond this is a broken station, not a reading (10 TWh / 10 GW).
MAX_ABS_VALUE: Final = Decimal("1e13")

_UNIT_SCALE: Final = {
    "Wh": ("Wh", Decimal(1)),
    "kWh": ("Wh", Decimal(1000)),
    "varh": ("varh", Decimal(1)),
    "kvarh": ("varh", Decimal(1000)),
    "W": ("W", Decimal(1)),
    "kW": ("W", Decimal(1000)),
    "VA": ("VA", Decimal(1)),
    "kVA": ("VA", Decimal(1000)),
    "var": ("var", Decimal(1)),
    "kvar": ("var", Decimal(1000)),
}


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as an exact, finite, plausible Decimal; else None."""
    if isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) > MAX_ABS_VALUE:
        return None
    return number


def normalise_quantity(value: Decimal, unit: str | None, measurand: str) -> tuple[Decimal, str]:
    """Convert to the base unit (kWh -> Wh, kW -> W ...). The default unit of energy is Wh."""
    if unit is None:
        unit = "Wh" if measurand.startswith("Energy") else ""
    base, factor = _UNIT_SCALE.get(unit, (unit, Decimal(1)))
    return value * factor, base


def energy_wh(value: Decimal) -> int:
    """Integer Wh of an energy register, rounded down: never bill energy not yet delivered."""
    return int(value.to_integral_value(rounding=ROUND_DOWN))


def exact_text(value: Decimal) -> str:
    """Canonical text of a Decimal (no exponent for ordinary magnitudes, no trailing zeros)."""
    normal = value.normalize()
    if normal == normal.to_integral_value():
        return str(normal.quantize(Decimal(1)))
    return format(normal, "f")


def bounded_int(value: Any, *, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def to_plain(value: Any) -> Any:
    """A received payload made storable as JSON: exact decimals become float or int.

    Only for the as-received copy; quantities that matter are stored exactly beside it.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        number = float(value)
        # A float that overflows would be stored as Infinity, which JSON columns refuse.
        return number if math.isfinite(number) else str(value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
