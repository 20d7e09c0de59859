"""Apartment meters as pymodbus servers holding each maker's register map: fixed dumps for the
profile tests, and living meters for demos and the tests that need time to pass.

Each `MeterDump` is a register dump written from the maker's document, independent of
`meters.profiles`: known values encoded the way that meter encodes them (Eastron and inepro
float32 high word first, ABB big-endian integers, Carlo Gavazzi INT32 low word first), decoys
where a wrong register would be easy to read (Eastron's import+export "Total kWh", the EM24
Ethernet's energy address), and the meter's own limits: addresses its document does not list
answer "illegal data address", a wrong function code "illegal function", and a request longer
than the meter takes "illegal data value". One server carries every meter on its own unit id,
as meters share an RS-485 line behind one gateway.

A living meter (`EmulatedMeter`) is a built-in profile with a load behind it: its energy-import
register counts the load's energy as its clock runs, and power, phase voltages and currents
follow, each encoded as the profile's register map says (address, function, type, word order,
scale) with the encoders below. Like the Shelly emulators it integrates lazily and exactly:
the registers catch up to `clock()` when a read asks for them. A `MeterLine` serves several on
one port (Modbus TCP or RTU-over-TCP) with relay modules beside them; `link_supply` feeds a
meter's flat through a module's coil, so while that coil is off the meter's load draws nothing.

    clock = ManualClock()
    flat = EmulatedMeter("eastron-sdm630", 1, 1200, energy_wh=4_500_000, clock=clock)
    async with MeterLine(flat, relays=[EmulatedUnit(9, coils=4)]) as line:
        await link_supply(flat, line, unit=9, coil=0)   # the disconnect relay of that flat
        ...
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import partial

from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from csms.simulator.loads import ConstantLoad, LoadCurve
from csms.simulator.modbus_devices import (
    EmulatedUnit,
    ModbusDevices,
    RegisterKind,
    Transport,
)
from meters.profiles import (
    BUILTIN,
    ENERGY_IMPORT_WH,
    PHASE_CURRENT_KEYS,
    PHASE_VOLTAGE_KEYS,
    POWER_W,
    MeterProfile,
    Register,
)
from meters.registers import read_plan

Clock = Callable[[], float]

INPUT = 4  # Modbus function code: read input registers
HOLDING = 3  # read holding registers

_DT = ModbusTcpClient.DATATYPE


def f32(value: float, word_order: str = "big") -> list[int]:
    return ModbusTcpClient.convert_to_registers(value, _DT.FLOAT32, word_order)  # type: ignore[arg-type]


def i32(raw: int, word_order: str = "big") -> list[int]:
    return ModbusTcpClient.convert_to_registers(raw, _DT.INT32, word_order)  # type: ignore[arg-type]


def u32(raw: int, word_order: str = "big") -> list[int]:
    return ModbusTcpClient.convert_to_registers(raw, _DT.UINT32, word_order)  # type: ignore[arg-type]


def u64(raw: int, word_order: str = "big") -> list[int]:
    return ModbusTcpClient.convert_to_registers(raw, _DT.UINT64, word_order)  # type: ignore[arg-type]


def i16(raw: int) -> list[int]:
    return ModbusTcpClient.convert_to_registers(raw, _DT.INT16)


def u16(raw: int) -> list[int]:
    return ModbusTcpClient.convert_to_registers(raw, _DT.UINT16)


@dataclass
class MeterDump:
    """One meter on the line: its documented registers (zero unless set) and its limits."""

    name: str
    unit: int
    functions: frozenset[int]  # function codes its measurement registers answer to
    max_read: int  # registers it answers in one request
    words: dict[int, int] = field(default_factory=dict)

    def documented(self, start: int, count: int) -> MeterDump:
        for address in range(start, start + count):
            self.words.setdefault(address, 0)
        return self

    def put(self, address: int, words: Sequence[int]) -> MeterDump:
        for offset, word in enumerate(words):
            self.words[address + offset] = word
        return self

    def device(self) -> SimDevice:
        """The pymodbus simulator device: one SimData per run of documented registers, so every
        other address is invalid and answers "illegal data address"."""
        blocks: list[SimData] = []
        run: list[int] = []
        start = -1
        for address in sorted(self.words):
            if run and address != start + len(run):
                blocks.append(SimData(start, values=run, datatype=DataType.REGISTERS))
                run = []
            if not run:
                start = address
            run.append(self.words[address])
        blocks.append(SimData(start, values=run, datatype=DataType.REGISTERS))
        return SimDevice(self.unit, simdata=blocks, action=partial(_limits, self))


async def _limits(
    meter: MeterDump,
    function_code: int,
    _start_address: int,
    _address: int,
    count: int,
    _registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    if set_values is not None or function_code not in meter.functions:
        return ExcCodes.ILLEGAL_FUNCTION
    if count > meter.max_read:
        return ExcCodes.ILLEGAL_VALUE
    return None


def sdm630(unit: int, *, power_w: float = 1523.4) -> MeterDump:
    """Eastron SDM630-Modbus V2 input registers 30001..30080 and 30343 (float32, high word
    first, 40 parameters per request)."""
    return (
        MeterDump("eastron-sdm630", unit, frozenset({INPUT}), 80)
        .documented(0x0000, 0x50).documented(0x0156, 2)
        .put(0x0000, f32(231.2)).put(0x0002, f32(229.8)).put(0x0004, f32(232.5))
        .put(0x0006, f32(4.25)).put(0x0008, f32(1.5)).put(0x000A, f32(0.75))
        .put(0x000C, f32(980.0)).put(0x000E, f32(340.0)).put(0x0010, f32(203.4))
        .put(0x0034, f32(power_w))  # 30053 Total system power, W
        .put(0x0048, f32(12345.678))  # 30073 Total Import kWh
        .put(0x004A, f32(321.5))  # 30075 Total Export kWh
        .put(0x0156, f32(12667.178))  # 30343 Total kWh = import + export
    )


def sdm72d_m(unit: int) -> MeterDump:
    """Eastron SDM72D-M V1.5: only the registers its table lists (30 parameters per request)."""
    meter = MeterDump("eastron-sdm72d-m", unit, frozenset({INPUT}), 60)
    for address in (0x0034, 0x0048, 0x004A, 0x0156, 0x0180, 0x0184, 0x0186, 0x0500, 0x0502):
        meter.documented(address, 2)
    return (
        meter.put(0x0034, f32(2875.5))  # 30053 Total system power, W
        .put(0x0048, f32(98765.4))  # 30073 Total Import kWh
        .put(0x004A, f32(12.3))  # 30075 Total Export kWh
        .put(0x0156, f32(98777.7))  # 30343 Total kWh
        .put(0x0500, f32(2875.5))  # 31281 Total import active power
    )


def sdm120(unit: int) -> MeterDump:
    """Eastron SDM120-Modbus: single phase, float32 input registers."""
    return (
        MeterDump("eastron-sdm120", unit, frozenset({INPUT}), 60)
        .documented(0x0000, 0x50).documented(0x0156, 2)
        .put(0x0000, f32(230.4))  # 30001 Voltage
        .put(0x0006, f32(6.52))  # 30007 Current
        .put(0x000C, f32(1498.9))  # 30013 Active power, W
        .put(0x0048, f32(0.7))  # 30073 Import active energy: 0.7 kWh is 700 Wh, not 699
        .put(0x004A, f32(0.2))  # 30075 Export active energy
        .put(0x0156, f32(0.9))  # 30343 Total active energy
    )


def abb_b23(unit: int) -> MeterDump:
    """ABB B23: holding registers only, big-endian integers (2CMC485003M0201 rev. A, 9.3)."""
    return (
        MeterDump("abb-b23", unit, frozenset({HOLDING}), 125)
        .documented(0x5000, 0x24).documented(0x5B00, 0x3E)
        .put(0x5000, u64(1_234_567))  # Active import, 0.01 kWh: 12345.67 kWh
        .put(0x5004, u64(99_901))  # Active export
        .put(0x5008, u64(1_134_666))  # Active net
        .put(0x5B00, u32(2301)).put(0x5B02, u32(2295)).put(0x5B04, u32(2318))  # 0.1 V
        .put(0x5B06, u32(3990)).put(0x5B08, u32(3985)).put(0x5B0A, u32(4002))  # L-L, 0.1 V
        .put(0x5B0C, u32(1234)).put(0x5B0E, u32(56)).put(0x5B10, u32(789))  # 0.01 A
        .put(0x5B14, i32(-152_345))  # Active power total, 0.01 W: exporting 1523.45 W
        .put(0x5B16, i32(12_000))  # Active power L1
    )


def em24(unit: int) -> MeterDump:
    """Carlo Gavazzi EM24-DIN (RS-485): INT32 low word first, functions 03 and 04 alike,
    11 registers per request."""
    little = "little"
    return (
        MeterDump("carlo-gavazzi-em24", unit, frozenset({INPUT, HOLDING}), 11)
        .documented(0x0000, 0x60)
        .put(0x0000, i32(2312, little)).put(0x0002, i32(2298, little))  # Volt*10
        .put(0x0004, i32(2325, little))
        .put(0x0006, i32(4001, little))  # V L1-L2
        .put(0x000C, i32(4250, little)).put(0x000E, i32(1500, little))  # Ampere*1000
        .put(0x0010, i32(750, little))
        .put(0x0028, i32(104_321, little))  # W sys, Watt*10
        .put(0x0034, i32(77_777, little))  # kWh (+) TOT on the EM24 Ethernet, not here
        .put(0x003E, i32(123_457, little))  # kWh (+) TOT, kWh*10
        .put(0x005C, i32(420, little))  # kWh (-) TOT
    )


def pro380(unit: int) -> MeterDump:
    """inepro PRO380: holding registers, float32 big-endian; power in kW, energy in kWh."""
    return (
        MeterDump("inepro-pro380", unit, frozenset({HOLDING}), 125)
        .documented(0x5000, 0x32).documented(0x6000, 0x48)
        .put(0x5000, f32(230.0))  # average voltage
        .put(0x5002, f32(229.9)).put(0x5004, f32(230.7)).put(0x5006, f32(231.4))
        .put(0x5008, f32(50.0))  # frequency
        .put(0x500C, f32(3.21)).put(0x500E, f32(0.45)).put(0x5010, f32(9.87))
        .put(0x5012, f32(2.345))  # total active power, kW
        .put(0x6000, f32(4600.5))  # total active energy (forward + reverse), kWh
        .put(0x600C, f32(4567.89))  # forward active energy, kWh
        .put(0x6018, f32(32.61))  # reverse active energy, kWh
    )


def site_meter(unit: int) -> MeterDump:
    """A meter known only to a site file: holding registers, Wh as uint32 low word first,
    power as int16 W, voltage as uint16 in 0.1 V."""
    return (
        MeterDump("site-meter", unit, frozenset({HOLDING}), 125)
        .documented(0x0100, 8)
        .put(0x0100, u32(7_654_321, "little"))
        .put(0x0102, i16(-250))
        .put(0x0103, u16(2297))
    )


class ModbusExceptionAnswer(Exception):
    """The meter answered a Modbus exception (illegal function, address or value)."""


async def read_registers(
    client: AsyncModbusTcpClient, unit: int, function: str, address: int, count: int
) -> list[int]:
    """The `ReadRegisters` shape over a pymodbus client, in place of the gateway owner."""
    if function == "input":
        answer = await client.read_input_registers(address, count=count, device_id=unit)
    else:
        answer = await client.read_holding_registers(address, count=count, device_id=unit)
    if answer.isError():
        raise ModbusExceptionAnswer(f"unit {unit} {function} {address}+{count}: {answer}")
    return list(answer.registers)


@asynccontextmanager
async def running_line(meters: Iterable[MeterDump]) -> AsyncIterator[int]:
    """A Modbus TCP server on 127.0.0.1 carrying `meters`; yields its port."""
    server = ModbusTcpServer([meter.device() for meter in meters], address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        sockets = server.transport.sockets  # type: ignore[attr-defined]
        yield sockets[0].getsockname()[1]
    finally:
        await server.shutdown()


# ---- living meters ----------------------------------------------------------------------------


def encode(register: Register, value: Decimal, *, floor: bool = False) -> list[int]:
    """`value`, in the unit its key names, as the words the meter sends: raw = value / scale,
    of the register's type and word order. Integer types round half to even, or floor for a
    counter (a meter shows the last whole step it has completed)."""
    raw = value / register.scale
    if register.type == "float32":
        return f32(float(raw), register.word_order)
    whole = int(raw.to_integral_value(ROUND_FLOOR if floor else ROUND_HALF_EVEN))
    if register.type == "uint16":
        return u16(whole)
    if register.type == "int16":
        return i16(whole)
    if register.type == "uint32":
        return u32(whole, register.word_order)
    if register.type == "int32":
        return i32(whole, register.word_order)
    return u64(whole, register.word_order)


class EmulatedMeter:
    """A meter of a built-in profile (or a custom `MeterProfile`) on unit `unit` with a load
    behind it (watts, or a `LoadCurve` timed from the meter's creation), counting from
    `energy_wh`. Energy is counted exactly and shown in whole Wh, floored, then in the
    register's own resolution. `load_from_supply`: the curve starts again whenever supply
    comes back on (a machine's programme behind its relay)."""

    def __init__(
        self,
        profile_id: str | MeterProfile,
        unit: int,
        load_w: float | Decimal | LoadCurve = 0,
        *,
        energy_wh: float | Decimal = 0,
        voltages_v: tuple[float, float, float] = (231.2, 229.8, 230.5),
        clock: Clock = time.monotonic,
        load_from_supply: bool = False,
    ) -> None:
        if isinstance(profile_id, MeterProfile):
            self.profile: MeterProfile = profile_id
        elif profile_id in BUILTIN:
            self.profile = BUILTIN[profile_id]
        else:
            raise ValueError(
                f"unknown meter profile {profile_id!r} (built in: {', '.join(BUILTIN)})"
            )
        self.unit = unit
        self.load_from_supply = load_from_supply
        self.voltages_v = voltages_v
        self._clock = clock
        self._origin = self._since = clock()
        self._energy_ws = float(energy_wh) * 3600
        self._load: LoadCurve = _curve(load_w)
        self._supplied = True
        blocks: dict[RegisterKind, dict[int, list[int]]] = {"input": {}, "holding": {}}
        for read in read_plan(self.profile):
            words = [0] * read.count
            self.refresh(read.function, read.address, words)
            blocks[read.function][read.address] = words
        #: the Modbus unit serving this meter; its fault knobs (`silent`, ...) work as usual
        self.modbus_unit = EmulatedUnit(
            unit,
            input_registers=blocks["input"],
            holding_registers=blocks["holding"],
            live=self,
        )

    def __repr__(self) -> str:
        return f"EmulatedMeter({self.profile.id!r}, {self.unit})"

    @property
    def load(self) -> LoadCurve:
        return self._load

    @load.setter
    def load(self, load: float | Decimal | LoadCurve) -> None:
        """From now on (what was drawn so far stays counted at the old load)."""
        self._catch_up()
        self._load = _curve(load)

    def set_load_w(self, watts: float | Decimal) -> None:
        self.load = watts

    @property
    def supplied(self) -> bool:
        """Whether the flat has power (its disconnect relay, if linked, lets it through)."""
        return self._supplied

    def set_supplied(self, on: bool) -> None:
        self._catch_up()
        if on and not self._supplied and self.load_from_supply:
            self._origin = self._since
        self._supplied = on

    def energy_wh(self) -> float:
        """Exactly what has been counted up to now, in Wh (the register shows it floored)."""
        self._catch_up()
        return self._energy_ws / 3600

    def power_w(self) -> float:
        self._catch_up()
        return self._load.watts_at(self._since - self._origin) if self._supplied else 0.0

    def values(self) -> dict[str, Decimal]:
        """Each of the profile's keys, now, in the unit the key names."""
        power = self.power_w()
        # A hair above the exact count, so a float sum of 0.9999999 Wh shows as the 1 Wh it is.
        whole_wh = math.floor(self._energy_ws / 3600 + 1e-6)
        found: dict[str, Decimal] = {
            ENERGY_IMPORT_WH: Decimal(whole_wh),
            POWER_W: Decimal(f"{power:.1f}"),
        }
        currents = [key for key in PHASE_CURRENT_KEYS if key in self.profile.registers]
        for phase, (voltage_key, current_key) in enumerate(
            zip(PHASE_VOLTAGE_KEYS, PHASE_CURRENT_KEYS, strict=True)
        ):
            volts = self.voltages_v[phase]
            if voltage_key in self.profile.registers:
                found[voltage_key] = Decimal(f"{volts:.1f}")
            if current_key in self.profile.registers:
                # The load shared evenly by the phases the meter measures.
                found[current_key] = Decimal(f"{power / len(currents) / volts:.3f}")
        return found

    def refresh(self, kind: RegisterKind, start: int, words: list[int]) -> None:
        """`LiveRegisters`: the present values into the unit's block of `kind` registers."""
        values = self.values()
        for key, register in self.profile.registers.items():
            offset = register.address - start
            if register.function != kind or offset < 0 or offset + register.width > len(words):
                continue
            encoded = encode(register, values[key], floor=key == ENERGY_IMPORT_WH)
            words[offset : offset + register.width] = encoded

    def _catch_up(self) -> None:
        now = self._clock()
        if now <= self._since:
            return
        if self._supplied:
            self._energy_ws += self._load.energy_ws(
                self._since - self._origin, now - self._origin
            )
        self._since = now


def _curve(load: float | Decimal | LoadCurve) -> LoadCurve:
    if isinstance(load, int | float | Decimal):
        return ConstantLoad(float(load))
    return load


class MeterLine(ModbusDevices):
    """Living meters, each on its unit, and relay modules (`relays`: units with coils) behind
    one emulated gateway: a Modbus TCP or RTU-over-TCP server on `host:port` (0: any free)."""

    def __init__(
        self,
        *meters: EmulatedMeter,
        relays: Iterable[EmulatedUnit] = (),
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            *(meter.modbus_unit for meter in meters),
            *relays,
            transport=transport,
            host=host,
            port=port,
        )
        self.meters: dict[int, EmulatedMeter] = {meter.unit: meter for meter in meters}


async def link_supply(
    meter: EmulatedMeter,
    module: ModbusDevices,
    *,
    unit: int,
    coil: int,
    inverted: bool = False,
) -> None:
    """Feed `meter`'s flat through coil `coil` of relay module `unit` on `module` (the same
    line or another): the flat has power while the coil is on (off with `inverted`, for
    normally-closed wiring), and the meter follows every write of that coil from now on."""
    await module.watch_coil(unit, coil, lambda level: meter.set_supplied(level != inverted))
