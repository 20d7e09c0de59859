"""Meter register profiles as data: which Modbus register holds which measurement, how it is
encoded and scaled, and which maker's document says so (devices.md, "Meters").

A profile maps measurement keys to registers. The value read times `scale` is the unit the key
names, so `energy_import_wh` is in Wh whatever the meter counts in:

| key                                           | unit | profiles                          |
|-----------------------------------------------|------|-----------------------------------|
| `energy_import_wh`                            | Wh   | every profile (required)          |
| `power_w`                                     | W    | every profile (required)          |
| `voltage_l1_v`, `voltage_l2_v`, `voltage_l3_v` | V    | line to neutral, where the meter has it |
| `current_l1_a`, `current_l2_a`, `current_l3_a` | A    | where the meter has it            |

The built-in profiles follow each maker's published register map, named in `document`. Where
a meter counts import and export separately, the profile reads *import* (energy drawn from the
grid): a "total" register that adds export would bill a flat for the energy its balcony panel
fed back. Custom profiles come from the site file's `meter_profiles` through
`profile_from_site_file`, which lists every problem of an entry at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, Literal, TypeGuard, get_args

RegisterFunction = Literal["input", "holding"]
RegisterType = Literal["uint16", "int16", "uint32", "int32", "uint64", "float32"]
WordOrder = Literal["big", "little"]

REGISTER_FUNCTIONS: Final[tuple[str, ...]] = get_args(RegisterFunction)
REGISTER_TYPES: Final[tuple[str, ...]] = get_args(RegisterType)
WORD_ORDERS: Final[tuple[str, ...]] = get_args(WordOrder)

#: 16-bit registers each type occupies.
REGISTER_WIDTH: Final[Mapping[str, int]] = MappingProxyType({
    "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "uint64": 4, "float32": 2,
})

#: Modbus's own limit on registers in one read request (function 03/04 answer, 250 bytes).
MODBUS_MAX_READ: Final = 125

ENERGY_IMPORT_WH: Final = "energy_import_wh"
POWER_W: Final = "power_w"
REQUIRED_KEYS: Final[tuple[str, ...]] = (ENERGY_IMPORT_WH, POWER_W)
PHASE_VOLTAGE_KEYS: Final[tuple[str, ...]] = ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v")
PHASE_CURRENT_KEYS: Final[tuple[str, ...]] = ("current_l1_a", "current_l2_a", "current_l3_a")
MEASUREMENT_KEYS: Final[tuple[str, ...]] = (
    *REQUIRED_KEYS, *PHASE_VOLTAGE_KEYS, *PHASE_CURRENT_KEYS,
)


class ProfileError(ValueError):
    """A custom profile is invalid. `problems` lists every problem found, each as
    `"<path>: <message>"` (`meter_profiles[0].registers.power_w.type: unknown type 'float64'`)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Register:
    """One measurement's register: where it is, how its words encode the value, and the factor
    from the raw value to the unit of the key it serves."""

    address: int  # register address as sent on the wire (0-based, no 30001/40001 offset)
    function: RegisterFunction  # input: function 04, holding: function 03
    type: RegisterType
    word_order: WordOrder  # big: most significant word first; little: least significant first
    scale: Decimal  # raw value x scale = the key's unit

    @property
    def width(self) -> int:
        """Registers this value occupies."""
        return REGISTER_WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class MeterProfile:
    """A meter model's registers keyed by what they measure (see the module's key table)."""

    id: str
    document: str  # the maker's document the registers follow: title, version or date, section
    registers: Mapping[str, Register]
    # Registers the meter answers in one request: some serial meters refuse Modbus's 125
    # (Eastron: 40 or 30 parameters; Carlo Gavazzi EM24: 11 words), so reads are planned below.
    max_read: int = MODBUS_MAX_READ
    # Unused registers one read may span between two wanted ones. Makers' own block reads cross
    # the gaps of their tables; a meter whose table is sparse (SDM72D-M) gets 0, so no read
    # touches an address its document does not list.
    max_gap: int = MODBUS_MAX_READ
    three_phase: bool = field(init=False)

    def __post_init__(self) -> None:
        widest = max((r.width for r in self.registers.values()), default=1)
        if not widest <= self.max_read <= MODBUS_MAX_READ or self.max_gap < 0:
            raise ValueError(
                f"profile {self.id}: max_read must be {widest}..{MODBUS_MAX_READ} (its widest "
                f"register up to Modbus's limit) and max_gap not negative"
            )
        # A read-only view: a profile is shared by every meter of its model.
        object.__setattr__(self, "registers", MappingProxyType(dict(self.registers)))
        object.__setattr__(
            self, "three_phase", all(key in self.registers for key in PHASE_VOLTAGE_KEYS)
        )


def _profile(
    profile_id: str,
    document: str,
    function: RegisterFunction,
    word_order: WordOrder,
    registers: Mapping[str, tuple[int, RegisterType, str]],
    max_read: int = MODBUS_MAX_READ,
    max_gap: int = MODBUS_MAX_READ,
) -> MeterProfile:
    """A built-in profile: every register of one meter shares its function and word order."""
    return MeterProfile(
        id=profile_id,
        document=document,
        registers={
            key: Register(address, function, kind, word_order, Decimal(scale))
            for key, (address, kind, scale) in registers.items()
        },
        max_read=max_read,
        max_gap=max_gap,
    )


# Eastron meters: IEEE 754 float32, high word first, input registers (function 04). Voltages in
# V, currents in A, power in W, energy in kWh (x1000 for Wh). Input register 30073 (0x0048) is
# "Total Import kWh"; 30343 (0x0156) "Total kWh" is import + export (note 1 of the tables).
_EASTRON_PHASES: Mapping[str, tuple[int, RegisterType, str]] = {
    "voltage_l1_v": (0x0000, "float32", "1"),  # 30001 Phase 1 line to neutral volts
    "voltage_l2_v": (0x0002, "float32", "1"),  # 30003
    "voltage_l3_v": (0x0004, "float32", "1"),  # 30005
    "current_l1_a": (0x0006, "float32", "1"),  # 30007 Phase 1 current
    "current_l2_a": (0x0008, "float32", "1"),  # 30009
    "current_l3_a": (0x000A, "float32", "1"),  # 30011
}

EASTRON_SDM630 = _profile(
    "eastron-sdm630",
    "Eastron SDM630-Modbus V2 (MID) user manual, B+G e-tech: 1.2.1 'SDM630Modbus Input "
    "Registers' (function 04, float32 high word first; at most 40 parameters = 80 registers "
    "per request). Energy is 30073 'Total Import kWh' (0x0048), not 30343 'Total kWh' (0x0156, "
    "import + export); power is 30053 'Total system power' (0x0034, W).",
    "input", "big",
    {
        **_EASTRON_PHASES,
        "power_w": (0x0034, "float32", "1"),  # 30053 Total system power, W
        "energy_import_wh": (0x0048, "float32", "1000"),  # 30073 Total Import kWh
    },
    max_read=80,
)

EASTRON_SDM72D_M = _profile(
    "eastron-sdm72d-m",
    "Eastron SDM72D-M user manual V1.5, B+G e-tech: part 3 'Modbus Protocol', input registers "
    "(function 04, float32 high word first; at most 30 parameters = 60 registers per request). "
    "That table has 30053 'Total system power' (0x0034, W) and 30073 'Total Import kWh' "
    "(0x0048) but no per-phase values; the SDM72D-M-2 adds them at 30001.. (a custom profile).",
    "input", "big",
    {
        "power_w": (0x0034, "float32", "1"),  # 30053 Total system power, W
        "energy_import_wh": (0x0048, "float32", "1000"),  # 30073 Total Import kWh
    },
    max_read=60,
    max_gap=0,  # the V1.5 table lists nothing between 0x0036 and 0x0047
)

EASTRON_SDM120 = _profile(
    "eastron-sdm120",
    "Eastron SDM120-Modbus user manual, B+G e-tech: Modbus protocol, input registers (function "
    "04, float32 high word first): 30001 Voltage (0x0000), 30007 Current (0x0006), 30013 Active "
    "power (0x000C, W), 30073 Import active energy (0x0048, kWh). Single phase (L1 only).",
    "input", "big",
    {
        "voltage_l1_v": (0x0000, "float32", "1"),  # 30001 Line to neutral volts
        "current_l1_a": (0x0006, "float32", "1"),  # 30007 Current
        "power_w": (0x000C, "float32", "1"),  # 30013 Active power, W
        "energy_import_wh": (0x0048, "float32", "1000"),  # 30073 Import active energy, kWh
    },
    # The SDM120 manual names no limit we could confirm; 30 parameters, the smallest Eastron
    # limit (SDM72D-M), is safe on every Eastron meter.
    max_read=60,
)

ABB_B23 = _profile(
    "abb-b23",
    "ABB B23/B24 User Manual, document 2CMC485003M0201 revision A (2013-06-20): 9.3 'Mapping "
    "tables' (function 03 holding registers, big-endian): active import 5000h (Unsigned, "
    "4 registers, 0.01 kWh), voltage L1-N..L3-N 5B00h.. (Unsigned, 0.1 V), current L1..L3 "
    "5B0Ch.. (Unsigned, 0.01 A), active power total 5B14h (Signed, 2 registers, 0.01 W).",
    "holding", "big",
    {
        "energy_import_wh": (0x5000, "uint64", "10"),  # 0.01 kWh = 10 Wh
        "voltage_l1_v": (0x5B00, "uint32", "0.1"),
        "voltage_l2_v": (0x5B02, "uint32", "0.1"),
        "voltage_l3_v": (0x5B04, "uint32", "0.1"),
        "current_l1_a": (0x5B0C, "uint32", "0.01"),
        "current_l2_a": (0x5B0E, "uint32", "0.01"),
        "current_l3_a": (0x5B10, "uint32", "0.01"),
        "power_w": (0x5B14, "int32", "0.01"),
    },
)

CARLO_GAVAZZI_EM24 = _profile(
    "carlo-gavazzi-em24",
    "Carlo Gavazzi EM24-DIN PFA, PFB & X models Communication Protocol, version 4 revision 0 "
    "(2012-12-03): table 2.3 'Instantaneous variables and meters' (functions 03 and 04 alike; "
    "INT32 word order LSW first; at most 11 registers per request): V L1-N 0000h.. (Volt*10), "
    "A L1 000Ch.. (Ampere*1000), W sys 0028h (Watt*10), kWh (+) TOT 003Eh (kWh*10). The "
    "EM24 Ethernet (E1) keeps kWh (+) TOT at 0034h and needs a custom profile.",
    "input", "little",
    {
        "voltage_l1_v": (0x0000, "int32", "0.1"),
        "voltage_l2_v": (0x0002, "int32", "0.1"),
        "voltage_l3_v": (0x0004, "int32", "0.1"),
        "current_l1_a": (0x000C, "int32", "0.001"),
        "current_l2_a": (0x000E, "int32", "0.001"),
        "current_l3_a": (0x0010, "int32", "0.001"),
        "power_w": (0x0028, "int32", "0.1"),
        "energy_import_wh": (0x003E, "int32", "100"),  # kWh*10: 0.1 kWh = 100 Wh
    },
    max_read=11,
)

INEPRO_PRO380 = _profile(
    "inepro-pro380",
    "inepro Metering PRO380 user manual V2.18 (2018): Modbus register list (function 03 holding "
    "registers, IEEE 754 float32 big-endian): L1..L3 voltage 5002h.. (V), L1..L3 current "
    "500Ch.. (A), total active power 5012h (kW), forward (import) active energy 600Ch (kWh); "
    "6000h 'total active energy' adds the reverse direction.",
    "holding", "big",
    {
        "voltage_l1_v": (0x5002, "float32", "1"),
        "voltage_l2_v": (0x5004, "float32", "1"),
        "voltage_l3_v": (0x5006, "float32", "1"),
        "current_l1_a": (0x500C, "float32", "1"),
        "current_l2_a": (0x500E, "float32", "1"),
        "current_l3_a": (0x5010, "float32", "1"),
        "power_w": (0x5012, "float32", "1000"),  # kW
        "energy_import_wh": (0x600C, "float32", "1000"),  # kWh
    },
)

#: Every built-in profile by id (devices.md names them).
BUILTIN: Final[Mapping[str, MeterProfile]] = MappingProxyType({
    profile.id: profile
    for profile in (
        EASTRON_SDM630, EASTRON_SDM72D_M, EASTRON_SDM120, ABB_B23, CARLO_GAVAZZI_EM24,
        INEPRO_PRO380,
    )
})

# The site file's validation imports these names; tests check they match BUILTIN.
BUILTIN_PROFILES: tuple[str, ...] = (
    "eastron-sdm630",
    "eastron-sdm72d-m",
    "eastron-sdm120",
    "abb-b23",
    "carlo-gavazzi-em24",
    "inepro-pro380",
)


def find_profile(profile_id: str, custom: Iterable[MeterProfile] = ()) -> MeterProfile:
    """The built-in or custom profile a meter names (`meters[].profile`). KeyError when neither
    has it; the site file's validation keeps that from happening for stored meters."""
    if profile_id in BUILTIN:
        return BUILTIN[profile_id]
    for profile in custom:
        if profile.id == profile_id:
            return profile
    raise KeyError(f"unknown meter profile {profile_id!r}")


# ---- custom profiles from the site file ----------------------------------------------------

_PROFILE_ID = re.compile(r"^[a-z0-9-]{1,64}$")  # the site file's slug
_ENTRY_KEYS = ("id", "registers")
_REGISTER_KEYS = ("address", "function", "type", "word_order", "scale")


def site_profile_problems(entry: Any, path: str = "") -> list[str]:
    """Every problem of one `meter_profiles[]` entry, each `"<path>: <message>"`, paths below
    `path` (`meter_profiles[2]`). An empty list means `profile_from_site_file` accepts it."""
    problems: list[str] = []

    def at(*parts: str) -> str:
        return ".".join(p for p in (path, *parts) if p)

    def add(where: str, message: str) -> None:
        problems.append(f"{where}: {message}" if where else message)

    if not isinstance(entry, Mapping):
        add(path, "must be an object with id and registers")
        return problems
    for key in entry:
        if key not in _ENTRY_KEYS:
            add(at(str(key)), "unknown key")
    profile_id = entry.get("id")
    if profile_id is None:
        add(at("id"), "required")
    elif not isinstance(profile_id, str) or not _PROFILE_ID.match(profile_id):
        add(at("id"), "must be 1-64 lowercase letters, digits and dashes")
    elif profile_id in BUILTIN:
        add(at("id"), f"{profile_id!r} is a built-in profile")
    registers = entry.get("registers")
    if registers is None:
        add(at("registers"), "required")
        return problems
    if not isinstance(registers, Mapping):
        add(at("registers"), "must be an object keyed by measurement")
        return problems
    for needed in REQUIRED_KEYS:
        if needed not in registers:
            add(at("registers"), f"{needed} is missing")
    for key, block in registers.items():
        where = at("registers", str(key))
        if key not in MEASUREMENT_KEYS:
            add(where, f"unknown measurement (known: {', '.join(MEASUREMENT_KEYS)})")
            continue
        problems.extend(_register_problems(block, where))
    return problems


def _register_problems(block: Any, where: str) -> list[str]:
    problems: list[str] = []
    if not isinstance(block, Mapping):
        return [f"{where}: must be an object with address, function, type"]
    for key in block:
        if key not in _REGISTER_KEYS:
            problems.append(f"{where}.{key}: unknown key")
    for required in ("address", "function", "type"):
        if required not in block:
            problems.append(f"{where}.{required}: required")
    kind = block.get("type")
    if "type" in block and kind not in REGISTER_TYPES:
        problems.append(f"{where}.type: unknown type {kind!r} (known: {', '.join(REGISTER_TYPES)})")
    address = block.get("address")
    if "address" in block:
        if not _is_int(address) or not 0 <= address <= 0xFFFF:
            problems.append(f"{where}.address: must be an integer 0..65535")
        elif kind in REGISTER_TYPES and address + REGISTER_WIDTH[kind] - 1 > 0xFFFF:
            problems.append(f"{where}.address: a {kind} at {address} runs past register 65535")
    function = block.get("function")
    if "function" in block and function not in REGISTER_FUNCTIONS:
        problems.append(f"{where}.function: must be one of {', '.join(REGISTER_FUNCTIONS)}")
    word_order = block.get("word_order", "big")
    if word_order not in WORD_ORDERS:
        problems.append(f"{where}.word_order: must be one of {', '.join(WORD_ORDERS)}")
    if "scale" in block and _scale(block["scale"]) is None:
        problems.append(f"{where}.scale: must be a number above 0")
    return problems


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _scale(value: Any) -> Decimal | None:
    """The scale as an exact Decimal: a JSON 0.1 arrives as the float 0.1 and must mean one
    tenth, so floats go through their shortest text form (`Decimal(str(x))`)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        scale = Decimal(str(value))
    except InvalidOperation:
        return None
    return scale if scale.is_finite() and scale > 0 else None


def profile_from_site_file(entry: Mapping[str, Any], path: str = "") -> MeterProfile:
    """A custom profile from one site-file `meter_profiles[]` entry (devices.md's format:
    `word_order` defaults to big, `scale` to 1). Raises ProfileError listing every problem."""
    problems = site_profile_problems(entry, path)
    if problems:
        raise ProfileError(problems)
    registers = {
        key: Register(
            address=block["address"],
            function=block["function"],
            type=block["type"],
            word_order=block.get("word_order", "big"),
            scale=_scale(block.get("scale", 1)) or Decimal(1),
        )
        for key, block in entry["registers"].items()
    }
    return MeterProfile(
        id=entry["id"], document="custom profile from the site file", registers=registers
    )
