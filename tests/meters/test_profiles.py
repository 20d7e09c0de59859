"""Every meter profile, built-in or from the site file, read from a real pymodbus server holding
that meter's register map (csms/simulator/meters.py) through `read_meter`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from csms.simulator.meters import (
    ModbusExceptionAnswer,
    abb_b23,
    em24,
    pro380,
    read_registers,
    running_line,
    sdm72d_m,
    sdm120,
    sdm630,
    site_meter,
)
from meters.profiles import (
    BUILTIN,
    BUILTIN_PROFILES,
    MEASUREMENT_KEYS,
    MODBUS_MAX_READ,
    PHASE_CURRENT_KEYS,
    PHASE_VOLTAGE_KEYS,
    ProfileError,
    find_profile,
    profile_from_site_file,
    site_profile_problems,
)
from meters.reading import ReadRegisters, read_meter
from meters.registers import read_plan

LINE = [sdm630(1), sdm72d_m(2), sdm120(3), abb_b23(4), em24(5), pro380(6), site_meter(7)]
UNIT = {meter.name: meter.unit for meter in LINE}


@dataclass(frozen=True)
class Expected:
    energy_import_wh: int
    power_w: str
    voltages: tuple[str, ...] = ()
    currents: tuple[str, ...] = ()


# What each dump holds, in the units of the keys: read from the makers' documents by hand.
EXPECTED = {
    # 12345.678 kWh float32; not 30343 "Total kWh" (12667.178, import + export)
    "eastron-sdm630": Expected(12_345_678, "1523.4", ("231.2", "229.8", "232.5"),
                               ("4.25", "1.5", "0.75")),
    "eastron-sdm72d-m": Expected(98_765_400, "2875.5"),
    # 0.7 kWh as float32 is 0.69999998..: the meter shows 0.7, so 700 Wh
    "eastron-sdm120": Expected(700, "1498.9", ("230.4",), ("6.52",)),
    # uint64 1234567 x 0.01 kWh; int32 -152345 x 0.01 W (the flat is exporting)
    "abb-b23": Expected(12_345_670, "-1523.45", ("230.1", "229.5", "231.8"),
                        ("12.34", "0.56", "7.89")),
    # INT32 low word first: kWh*10 123457, W*10 104321, V*10, A*1000
    "carlo-gavazzi-em24": Expected(12_345_700, "10432.1", ("231.2", "229.8", "232.5"),
                                   ("4.25", "1.5", "0.75")),
    # forward energy 4567.89 kWh (not 6000h total 4600.5); power 2.345 kW
    "inepro-pro380": Expected(4_567_890, "2345", ("229.9", "230.7", "231.4"),
                              ("3.21", "0.45", "9.87")),
}

ReadFor = Callable[[int], ReadRegisters]


@pytest.fixture
async def line() -> AsyncIterator[ReadFor]:
    """One server for every meter (each on its unit id) and one client, as behind a gateway."""
    async with running_line(LINE) as port:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        assert await client.connect()
        try:
            yield lambda unit: partial(read_registers, client, unit)
        finally:
            client.close()


def test_every_builtin_profile_is_tested_and_named() -> None:
    assert tuple(BUILTIN) == BUILTIN_PROFILES
    assert set(EXPECTED) == set(BUILTIN)


@pytest.mark.parametrize("profile_id", BUILTIN_PROFILES)
def test_builtin_profiles_are_complete(profile_id: str) -> None:
    profile = BUILTIN[profile_id]
    assert profile.id == profile_id
    assert {"energy_import_wh", "power_w"} <= set(profile.registers)
    assert set(profile.registers) <= set(MEASUREMENT_KEYS)
    assert len(profile.document) > 40 and any(c.isdigit() for c in profile.document)
    assert 1 <= profile.max_read <= MODBUS_MAX_READ
    has_phases = set(PHASE_VOLTAGE_KEYS) | set(PHASE_CURRENT_KEYS) <= set(profile.registers)
    assert profile.three_phase == has_phases
    for request in read_plan(profile):
        assert request.count <= profile.max_read


@pytest.mark.parametrize("profile_id", BUILTIN_PROFILES)
async def test_builtin_profile_reads_its_meter(line: ReadFor, profile_id: str) -> None:
    values = await read_meter(line(UNIT[profile_id]), BUILTIN[profile_id])
    expected = EXPECTED[profile_id]
    assert values.energy_import_wh == expected.energy_import_wh
    assert values.power_w == Decimal(expected.power_w)
    voltages = (values.voltage_l1_v, values.voltage_l2_v, values.voltage_l3_v)
    currents = (values.current_l1_a, values.current_l2_a, values.current_l3_a)
    padded = 3 - len(expected.voltages)
    assert voltages == (*map(Decimal, expected.voltages), *([None] * padded))
    assert currents == (*map(Decimal, expected.currents), *([None] * (3 - len(expected.currents))))
    assert values.not_a_number == frozenset()
    assert values.complete


async def test_em24_limit_of_eleven_registers_is_what_the_meter_takes(line: ReadFor) -> None:
    """The emulated EM24 refuses a longer request, so the plan's limit is what makes it work."""
    greedy = replace(BUILTIN["carlo-gavazzi-em24"], max_read=MODBUS_MAX_READ)
    with pytest.raises(ModbusExceptionAnswer, match="exception_code=3"):
        await read_meter(line(UNIT["carlo-gavazzi-em24"]), greedy)


async def test_sdm72d_m_reads_only_listed_registers(line: ReadFor) -> None:
    bridging = replace(BUILTIN["eastron-sdm72d-m"], max_gap=MODBUS_MAX_READ)
    with pytest.raises(ModbusExceptionAnswer, match="exception_code=2"):
        await read_meter(line(UNIT["eastron-sdm72d-m"]), bridging)


async def test_wrong_function_code_is_refused(line: ReadFor) -> None:
    """Eastron measurements are input registers only: the emulator does not let a profile
    with the wrong function pass."""
    holding = replace(BUILTIN["eastron-sdm630"], registers={
        key: replace(register, function="holding")
        for key, register in BUILTIN["eastron-sdm630"].registers.items()
    })
    with pytest.raises(ModbusExceptionAnswer, match="exception_code=1"):
        await read_meter(line(UNIT["eastron-sdm630"]), holding)


# ---- custom profiles from the site file ----------------------------------------------------

SITE_METER = {
    "id": "site-meter",
    "registers": {
        "energy_import_wh": {"address": 256, "function": "holding", "type": "uint32",
                             "word_order": "little"},
        "power_w": {"address": 258, "function": "holding", "type": "int16"},
        "voltage_l1_v": {"address": 259, "function": "holding", "type": "uint16", "scale": 0.1},
    },
}

# devices.md's example: SDM630 registers, energy from 0x0156 ("Total kWh") in kWh x 1000
DEVICES_MD_EXAMPLE = {
    "id": "my-meter",
    "registers": {
        "energy_import_wh": {"address": 0x0156, "function": "input", "type": "float32",
                             "word_order": "big", "scale": 1000},
        "power_w": {"address": 0x0034, "function": "input", "type": "float32",
                    "word_order": "big", "scale": 1},
    },
}


async def test_custom_profile_from_site_file_reads_its_meter(line: ReadFor) -> None:
    profile = profile_from_site_file(SITE_METER)
    assert profile.id == "site-meter" and "site file" in profile.document
    assert profile.registers["voltage_l1_v"].scale == Decimal("0.1")  # the JSON float, exact
    assert profile.registers["power_w"].word_order == "big"  # the default
    values = await read_meter(line(UNIT["site-meter"]), profile)
    assert values.energy_import_wh == 7_654_321
    assert values.power_w == Decimal(-250)
    assert values.voltage_l1_v == Decimal("229.7")
    assert values.voltage_l2_v is None and values.current_l1_a is None
    assert not profile.three_phase


async def test_devices_md_example_profile_reads_an_sdm630(line: ReadFor) -> None:
    profile = profile_from_site_file(DEVICES_MD_EXAMPLE)
    values = await read_meter(line(UNIT["eastron-sdm630"]), profile)
    assert values.energy_import_wh == 12_667_178  # what that register holds: import + export
    assert values.power_w == Decimal("1523.4")
    assert find_profile("my-meter", [profile]) is profile
    assert find_profile("abb-b23", [profile]) is BUILTIN["abb-b23"]
    with pytest.raises(KeyError):
        find_profile("nobody", [profile])


def site_problems(entry: Any) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        profile_from_site_file(entry, path="meter_profiles[3]")
    assert list(caught.value.problems) == site_profile_problems(entry, "meter_profiles[3]")
    return list(caught.value.problems)


def test_site_profile_lists_every_problem_with_its_path() -> None:
    found = site_problems({
        "id": "Bad Id",
        "maker": "x",
        "registers": {
            "power_w": {"address": 70000, "function": "coil", "type": "float64",
                        "word_order": "middle", "scale": 0, "endian": "big"},
            "energy_import_kwh": {"address": 1, "function": "input", "type": "uint32"},
            "voltage_l1_v": {"function": "input"},
            "current_l1_a": "0x10",
        },
    })
    path = "meter_profiles[3]"
    assert set(found) == {
        f"{path}.maker: unknown key",
        f"{path}.id: must be 1-64 lowercase letters, digits and dashes",
        f"{path}.registers: energy_import_wh is missing",
        f"{path}.registers.power_w.endian: unknown key",
        f"{path}.registers.power_w.type: unknown type 'float64' (known: uint16, int16, uint32, "
        "int32, uint64, float32)",
        f"{path}.registers.power_w.address: must be an integer 0..65535",
        f"{path}.registers.power_w.function: must be one of input, holding",
        f"{path}.registers.power_w.word_order: must be one of big, little",
        f"{path}.registers.power_w.scale: must be a number above 0",
        f"{path}.registers.energy_import_kwh: unknown measurement (known: "
        + ", ".join(MEASUREMENT_KEYS) + ")",
        f"{path}.registers.voltage_l1_v.address: required",
        f"{path}.registers.voltage_l1_v.type: required",
        f"{path}.registers.current_l1_a: must be an object with address, function, type",
    }


@pytest.mark.parametrize(("entry", "problem"), [
    ({"id": "abb-b23", "registers": DEVICES_MD_EXAMPLE["registers"]},
     "meter_profiles[3].id: 'abb-b23' is a built-in profile"),
    ({"registers": DEVICES_MD_EXAMPLE["registers"]}, "meter_profiles[3].id: required"),
    ({"id": "x"}, "meter_profiles[3].registers: required"),
    ({"id": "x", "registers": []}, "meter_profiles[3].registers: must be an object keyed by "
                                   "measurement"),
    ("x", "meter_profiles[3]: must be an object with id and registers"),
    ({"id": "x", "registers": {
        "energy_import_wh": {"address": 65534, "function": "input", "type": "uint64"},
        "power_w": {"address": True, "function": "input", "type": "int16"}}},
     "meter_profiles[3].registers.energy_import_wh.address: a uint64 at 65534 runs past "
     "register 65535"),
    ({"id": "x", "registers": {
        "energy_import_wh": {"address": 1, "function": "input", "type": "uint16"},
        "power_w": {"address": True, "function": "input", "type": "int16",
                    "scale": float("nan")}}},
     "meter_profiles[3].registers.power_w.address: must be an integer 0..65535"),
])
def test_site_profile_problem(entry: Any, problem: str) -> None:
    assert problem in site_problems(entry)


def test_site_profile_scale_must_be_finite_and_positive() -> None:
    entry = {"id": "x", "registers": {
        "energy_import_wh": {"address": 1, "function": "input", "type": "uint16",
                             "scale": float("inf")},
        "power_w": {"address": 2, "function": "input", "type": "int16", "scale": "-1"}}}
    assert set(site_problems(entry)) == {
        "meter_profiles[3].registers.energy_import_wh.scale: must be a number above 0",
        "meter_profiles[3].registers.power_w.scale: must be a number above 0",
    }
