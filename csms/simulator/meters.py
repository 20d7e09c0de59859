"""Apartment meters as pymodbus TCP servers holding each maker's register map.

Each `MeterDump` is a register dump written from the maker's document, independent of
`meters.profiles`: known values encoded the way that meter encodes them (Eastron and inepro
float32 high word first, ABB big-endian integers, Carlo Gavazzi INT32 low word first), decoys
where a wrong register would be easy to read (Eastron's import+export "Total kWh", the EM24
Ethernet's energy address), and the meter's own limits: addresses its document does not list
answer "illegal data address", a wrong function code "illegal function", and a request longer
than the meter takes "illegal data value". One server carries every meter on its own unit id,
as meters share an RS-485 line behind one gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

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
