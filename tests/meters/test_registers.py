"""Pure decoding and read planning, without sockets: word order, signedness, scale, uint64,
float32 text, NaN, and the fewest reads within a meter's limits."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from meters.profiles import BUILTIN, MeterProfile, Register, RegisterType, WordOrder
from meters.registers import (
    MalformedReading,
    Read,
    decode,
    float32_decimal,
    raw_value,
    read_plan,
    scaled_value,
)

DT = ModbusTcpClient.DATATYPE


def reg(kind: RegisterType, order: WordOrder = "big", scale: str = "1", address: int = 0,
        function: str = "input") -> Register:
    return Register(address, function, kind, order, Decimal(scale))  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "order", "words", "raw"), [
    ("uint16", "big", [0xFFFF], 65535),
    ("int16", "big", [0xFFFF], -1),
    ("int16", "big", [0x8000], -32768),
    ("uint32", "big", [0x0001, 0x0002], 0x0001_0002),
    ("uint32", "little", [0x0001, 0x0002], 0x0002_0001),
    ("int32", "big", [0xFFFF, 0xFFFE], -2),
    ("int32", "little", [0xFFFE, 0xFFFF], -2),
    ("int32", "little", [0x0000, 0x8000], -(2**31)),
    ("uint64", "big", [0x0001, 0x0002, 0x0003, 0x0004], 0x0001_0002_0003_0004),
    ("uint64", "little", [0x0001, 0x0002, 0x0003, 0x0004], 0x0004_0003_0002_0001),
    ("uint64", "big", [0xFFFF] * 4, 2**64 - 1),
])
def test_integer_words(kind: RegisterType, order: WordOrder, words: list[int], raw: int) -> None:
    assert raw_value(reg(kind, order), words) == raw


def test_float32_word_order() -> None:
    high, low = struct.unpack(">2H", struct.pack(">f", 230.5))
    assert raw_value(reg("float32", "big"), [high, low]) == 230.5
    assert raw_value(reg("float32", "little"), [low, high]) == 230.5
    assert raw_value(reg("float32", "big"), [low, high]) != 230.5


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["big", "little"]))
def test_int32_agrees_with_pymodbus(value: int, order: WordOrder) -> None:
    words = ModbusTcpClient.convert_to_registers(value, DT.INT32, order)
    assert raw_value(reg("int32", order), words) == value


@given(st.integers(0, 2**64 - 1), st.sampled_from(["big", "little"]))
def test_uint64_agrees_with_pymodbus(value: int, order: WordOrder) -> None:
    words = ModbusTcpClient.convert_to_registers(value, DT.UINT64, order)
    assert raw_value(reg("uint64", order), words) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
@example(3.4028234663852886e38)  # the largest float32: its shorter texts overflow float32
@example(0.7)
def test_float32_text_reads_back_as_the_same_float32(value: float) -> None:
    text = float32_decimal(value)
    assert struct.pack(">f", float(text)) == struct.pack(">f", value)
    assert len(text.as_tuple().digits) <= 9


def test_scale_is_exact() -> None:
    assert scaled_value(reg("uint32", scale="0.01"), [0x0002, 0x5319]) == Decimal("1523.45")
    assert scaled_value(reg("int32", scale="0.01"), [0xFFFD, 0xACE7]) == Decimal("-1523.45")
    assert scaled_value(reg("int32", "little", "100"), [0xE241, 0x0001]) == 12_345_700
    assert scaled_value(reg("uint64", scale="10"), [0, 1, 0, 0]) == 10 * 2**32
    # float32 0.7 is 0.699999988: the text the meter shows, then the scale
    high, low = struct.unpack(">2H", struct.pack(">f", 0.7))
    assert scaled_value(reg("float32", scale="1000"), [high, low]) == 700


@pytest.mark.parametrize("special", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_never_numbers(special: float) -> None:
    profile = MeterProfile("p", "test", {
        "energy_import_wh": reg("float32", scale="1000", address=0),
        "power_w": reg("float32", address=2),
        "voltage_l1_v": reg("float32", address=4),
    })
    words = [*struct.unpack(">2H", struct.pack(">f", 1.5)),
             *struct.unpack(">2H", struct.pack(">f", special)),
             *struct.unpack(">2H", struct.pack(">f", special))]
    values = decode(profile, {Read("input", 0, 6): words})
    assert values.energy_import_wh == 1500
    assert values.power_w is None and values.voltage_l1_v is None
    assert values.not_a_number == {"power_w", "voltage_l1_v"}
    assert not values.complete


def test_energy_is_floored_to_whole_wh() -> None:
    profile = MeterProfile("p", "test", {
        "energy_import_wh": reg("uint32", scale="0.1", address=0),
        "power_w": reg("int16", scale="0.1", address=2),
    })
    values = decode(profile, {Read("input", 0, 3): [0x0001, 0xE243, 0xFFF6]})  # 123459, -10
    assert values.energy_import_wh == 12_345  # 12345.9 Wh
    assert values.power_w == Decimal("-1.0")


def test_decode_refuses_answers_that_do_not_fit() -> None:
    profile = MeterProfile("p", "test", {
        "energy_import_wh": reg("uint32", address=0),
        "power_w": reg("int16", address=2, function="holding"),
    })
    with pytest.raises(MalformedReading, match="answered 2 registers, asked 3"):
        decode(profile, {Read("input", 0, 3): [0, 1], Read("holding", 2, 1): [5]})
    with pytest.raises(MalformedReading, match="no holding block covers register 2"):
        decode(profile, {Read("input", 0, 3): [0, 1, 2]})
    with pytest.raises(MalformedReading, match=r"0\.\.65535"):
        decode(profile, {Read("input", 0, 2): [0, 70_000], Read("holding", 2, 1): [5]})
    values = decode(profile, {Read("input", 0, 2): [0, 7], Read("holding", 2, 1): [5]})
    assert (values.energy_import_wh, values.power_w) == (7, 5)


def plan_of(max_read: int = 125, max_gap: int = 125, **registers: Register) -> tuple[Read, ...]:
    return read_plan(MeterProfile("p", "test", registers, max_read=max_read, max_gap=max_gap))


def test_plan_merges_per_function_and_splits_at_the_limit() -> None:
    plan = plan_of(
        energy_import_wh=reg("uint64", address=100, function="holding"),
        power_w=reg("int32", address=0),
        voltage_l1_v=reg("uint16", address=10),
        voltage_l2_v=reg("uint16", address=122),  # 0..122 is 123 registers: fits 125
        voltage_l3_v=reg("float32", address=124),  # 0..125 would be 126
        current_l1_a=reg("int16", address=104, function="holding"),
    )
    assert plan == (
        Read("input", 0, 123), Read("input", 124, 2), Read("holding", 100, 5),
    )


def test_plan_keeps_gaps_within_max_gap_and_handles_overlap() -> None:
    plan = plan_of(
        max_gap=2,
        energy_import_wh=reg("uint32", address=0),
        power_w=reg("uint32", address=4),  # gap of 2: joined
        voltage_l1_v=reg("uint16", address=9),  # gap of 3: a new read
        voltage_l2_v=reg("uint32", address=9),  # same address, longer: read grows
    )
    assert plan == (Read("input", 0, 6), Read("input", 9, 2))


@pytest.mark.parametrize(("max_read", "max_gap"), [(3, 0), (126, 0), (4, -1)])
def test_profile_limits_must_allow_every_register(max_read: int, max_gap: int) -> None:
    with pytest.raises(ValueError, match="max_"):
        MeterProfile("p", "test", {"energy_import_wh": reg("uint64"), "power_w": reg("int16")},
                     max_read=max_read, max_gap=max_gap)


def test_builtin_plans() -> None:
    assert read_plan(BUILTIN["eastron-sdm630"]) == (Read("input", 0x0000, 0x4A),)
    assert read_plan(BUILTIN["eastron-sdm72d-m"]) == (
        Read("input", 0x0034, 2), Read("input", 0x0048, 2))
    assert read_plan(BUILTIN["carlo-gavazzi-em24"]) == (
        Read("input", 0x0000, 6), Read("input", 0x000C, 6), Read("input", 0x0028, 2),
        Read("input", 0x003E, 2))
    assert read_plan(BUILTIN["abb-b23"]) == (
        Read("holding", 0x5000, 4), Read("holding", 0x5B00, 0x16))
