"""From a profile to Modbus reads and from the words read to values: pure functions, no I/O.

`read_plan` groups a profile's registers into as few contiguous reads per function as the
meter's request limit allows (OpenEMS's lesson: a device hands its bus owner a read plan as
data). `decode` turns the answered blocks into `MeterValues`: energy as whole Wh (floored),
power, voltages and currents as Decimal. A float register holding NaN or infinity (meters
report "no value" that way) never becomes a number: its field is None and its key is listed in
`not_a_number`, for the poller to flag.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from meters.profiles import (
    ENERGY_IMPORT_WH,
    POWER_W,
    MeterProfile,
    Register,
    RegisterFunction,
)


class MalformedReading(ValueError):
    """The blocks handed to `decode` do not answer the profile's read plan (a block missing, of
    the wrong length, or a word outside 0..65535): the device or gateway answered garbage."""


@dataclass(frozen=True, slots=True)
class Read:
    """One Modbus read request: `count` registers from `address` with `function`."""

    function: RegisterFunction
    address: int
    count: int

    @property
    def end(self) -> int:
        """The first address after this read."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class MeterValues:
    """What one reading of a meter found. A field is None when the profile has no register for
    it, or when its register held NaN/infinity (then its key is in `not_a_number`)."""

    energy_import_wh: int | None  # whole Wh, floored
    power_w: Decimal | None
    voltage_l1_v: Decimal | None = None
    voltage_l2_v: Decimal | None = None
    voltage_l3_v: Decimal | None = None
    current_l1_a: Decimal | None = None
    current_l2_a: Decimal | None = None
    current_l3_a: Decimal | None = None
    not_a_number: frozenset[str] = frozenset()  # keys whose float register held NaN or +-inf

    @property
    def complete(self) -> bool:
        """Energy and power were both read as numbers: the reading may be billed."""
        return self.energy_import_wh is not None and self.power_w is not None


def read_plan(profile: MeterProfile) -> tuple[Read, ...]:
    """The fewest contiguous reads, per function, that cover every register of the profile,
    none longer than `profile.max_read` (itself at most Modbus's 125) and none spanning more
    than `profile.max_gap` unused registers between two wanted ones. Registers are taken in
    address order and a read grows while the next register still fits: with limits that only
    look at neighbours and the read's length, starting each read at the first register not yet
    covered is optimal."""
    plan: list[Read] = []
    for function in ("input", "holding"):
        registers = sorted(
            (r for r in profile.registers.values() if r.function == function),
            key=lambda r: r.address,
        )
        start: int | None = None
        end = 0
        for register in registers:
            register_end = register.address + register.width
            if (
                start is not None
                and register.address - end <= profile.max_gap
                and max(end, register_end) - start <= profile.max_read
            ):
                end = max(end, register_end)
                continue
            if start is not None:
                plan.append(Read(function, start, end - start))
            start, end = register.address, register_end
        if start is not None:
            plan.append(Read(function, start, end - start))
    return tuple(plan)


def register_words(register: Register, blocks: Mapping[Read, Sequence[int]]) -> list[int]:
    """The words of one register, cut from whichever read block covers it."""
    for read, words in blocks.items():
        if (
            read.function == register.function
            and read.address <= register.address
            and register.address + register.width <= read.end
        ):
            if len(words) != read.count:
                raise MalformedReading(
                    f"{read.function} read at {read.address} answered {len(words)} registers, "
                    f"asked {read.count}"
                )
            offset = register.address - read.address
            return list(words[offset : offset + register.width])
    raise MalformedReading(
        f"no {register.function} block covers register {register.address} ({register.type})"
    )


def raw_value(register: Register, words: Sequence[int]) -> int | float:
    """The register's raw value: an int for integer types, the float32 as a Python float
    (possibly NaN or infinite). Words are 16-bit, each big-endian on the wire (Modbus); the word
    order says which word comes first."""
    if len(words) != register.width:
        raise MalformedReading(
            f"{register.type} needs {register.width} registers, got {len(words)}"
        )
    if any(not 0 <= word <= 0xFFFF for word in words):
        raise MalformedReading(f"register words must be 0..65535, got {list(words)}")
    ordered = list(words) if register.word_order == "big" else list(reversed(words))
    data = b"".join(word.to_bytes(2, "big") for word in ordered)
    if register.type == "float32":
        value: float = struct.unpack(">f", data)[0]
        return value
    return int.from_bytes(data, "big", signed=register.type.startswith("int"))


def float32_decimal(value: float) -> Decimal:
    """The shortest decimal that reads back as the same float32: what the meter shows on its
    display. `Decimal(value)` would keep the binary error and floor 0.7 kWh to 699 Wh."""
    exact = struct.unpack(">f", struct.pack(">f", value))[0]
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = f"{exact:.{digits}g}"
        try:
            if struct.unpack(">f", struct.pack(">f", float(text)))[0] == exact:
                return Decimal(text)
        except OverflowError:  # rounded past the largest float32 (3.4028235e38)
            continue
    return Decimal(repr(exact))  # pragma: no cover - unreachable, 9 digits always suffice


def scaled_value(register: Register, words: Sequence[int]) -> Decimal | None:
    """The register's value in its key's unit (raw x scale), or None for a NaN/infinite float."""
    raw = raw_value(register, words)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None
        return float32_decimal(raw) * register.scale
    return Decimal(raw) * register.scale


def decode(profile: MeterProfile, blocks: Mapping[Read, Sequence[int]]) -> MeterValues:
    """The profile's measurements from the answered blocks of `read_plan(profile)`."""
    values: dict[str, Decimal | None] = {}
    not_a_number: set[str] = set()
    for key, register in profile.registers.items():
        value = scaled_value(register, register_words(register, blocks))
        if value is None:
            not_a_number.add(key)
        values[key] = value
    energy = values.get(ENERGY_IMPORT_WH)
    return MeterValues(
        energy_import_wh=None if energy is None else int(energy.to_integral_value(ROUND_FLOOR)),
        power_w=values.get(POWER_W),
        voltage_l1_v=values.get("voltage_l1_v"),
        voltage_l2_v=values.get("voltage_l2_v"),
        voltage_l3_v=values.get("voltage_l3_v"),
        current_l1_a=values.get("current_l1_a"),
        current_l2_a=values.get("current_l2_a"),
        current_l3_a=values.get("current_l3_a"),
        not_a_number=frozenset(not_a_number),
    )
