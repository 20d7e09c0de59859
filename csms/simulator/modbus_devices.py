"""Modbus units behind one emulated gateway: a real pymodbus server on 127.0.0.1.

It speaks Modbus TCP (MBAP framing) or RTU-over-TCP (RTU frames with CRC on a TCP stream), and
holds several units, each with coils (a relay module) and/or input and holding registers (a
meter's register map). Addresses a unit does not define answer exception 02, as real devices do.

    meter = EmulatedUnit(3, input_registers={0x0000: [0x4366, 0x0000], 0x0156: [0x4479, 0x8000]})
    async with ModbusDevices(EmulatedUnit(1, coils=8), meter, transport="tcp") as devices:
        gateway = ModbusGateway("127.0.0.1", devices.port, "tcp")
        ...
        await devices.set_registers(3, "input", 0x0156, [0x447A, 0x0000])

Words of typed values (a meter map from its datasheet) come from pymodbus' own codec:
`AsyncModbusTcpClient.convert_to_registers(230.5, AsyncModbusTcpClient.DATATYPE.FLOAT32)`
is `[0x4366, 0x8000]` (`word_order="little"` for meters that send the low word first).

Fault knobs sit on each `EmulatedUnit` and are read at every request, so a test flips them
while the server runs: `silent` (the unit is gone from the line: no answer at all),
`exception` (every request answered with that exception code), `answer_as` (answers carry
another unit id, a miswired address), `stuck` (coil -> level it stays at: writes are
acknowledged, the coil does not move). A unit id the server does not hold gets no answer, or
with `absent="exception"` the gateway's exception 0x0B. `hold()` keeps answers back until
`release()`, to queue requests behind one in flight. `requests` logs every request received.
`restart()` is a power cycle of the gateway that keeps every value (on the same port).

Two hooks serve devices whose memory moves by itself (csms.simulator.meters' living meters):
a unit's `live` registers are asked to `refresh` the words of a block just before any read of
it answers (a master's or the test's own), so values follow the device's clock without a task
running in the background; and `watch_coil` calls back with a coil's level whenever it is
written (by a master, or by `set_coil` as the module's own button), so a meter fed through that
relay knows when its flat lost power.

`port` may be given (the demo's fixed ports); a port that is taken fails `start()` with an
OSError naming it.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

Transport = Literal["tcp", "rtu-over-tcp"]
RegisterKind = Literal["input", "holding"]

_FUNCTION_CODES = {"coils": 1, "holding": 3, "input": 4}
_READ_KINDS: dict[int, RegisterKind] = {3: "holding", 4: "input"}
_COIL_WRITES = (5, 15)


class LiveRegisters(Protocol):
    """Registers that move by themselves (a meter counting energy)."""

    def refresh(self, kind: RegisterKind, start: int, words: list[int]) -> None:
        """Write the present values into `words`, the unit's block of `kind` registers whose
        first word is register `start` (in place: the server answers from this list)."""
        ...


CoilWatcher = Callable[[bool], None]


@dataclass
class EmulatedUnit:
    """One unit id behind the gateway, its memory and its fault knobs."""

    id: int
    #: coils from address 0: how many (all off), or their states
    coils: int | list[bool] = 0
    #: register blocks: start address -> words (16-bit); other addresses answer exception 02
    input_registers: dict[int, list[int]] = field(default_factory=dict)
    holding_registers: dict[int, list[int]] = field(default_factory=dict)
    silent: bool = False
    exception: int | None = None
    answer_as: int | None = None
    stuck: dict[int, bool] = field(default_factory=dict)
    #: registers refreshed before every read (None: they hold what was set)
    live: LiveRegisters | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.id <= 247:
            raise ValueError(f"unit id {self.id} outside 1..247")

    def coil_states(self) -> list[bool]:
        return [False] * self.coils if isinstance(self.coils, int) else list(self.coils)


@dataclass(frozen=True, slots=True)
class Request:
    """A request as the server received it."""

    unit: int
    function: int
    address: int
    count: int
    bits: tuple[bool, ...] = ()


class ModbusDevices:
    """A Modbus gateway on 127.0.0.1 holding `units`; `port` is known once started."""

    def __init__(
        self,
        *units: EmulatedUnit,
        transport: Transport = "tcp",
        absent: Literal["silent", "exception"] = "silent",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.units: dict[int, EmulatedUnit] = {}
        for unit in units:
            self.add_unit(unit)
        self.transport: Transport = transport
        self.absent = absent
        self.host = host
        self.port = port
        self._coil_watchers: dict[tuple[int, int], list[CoilWatcher]] = {}
        self.requests: list[Request] = []
        self._server: ModbusTcpServer | None = None
        self._direct = False  # our own reads and writes bypass faults and the hold
        self._released = asyncio.Event()
        self._released.set()
        self._arrived = asyncio.Event()
        self._drop_next_answer = False

    def add_unit(self, unit: EmulatedUnit) -> EmulatedUnit:
        """Add a unit; it answers from the next `start()` (or `restart()`) on."""
        if unit.id in self.units:
            raise ValueError(f"unit {unit.id} is already held")
        self.units[unit.id] = unit
        return unit

    async def __aenter__(self) -> ModbusDevices:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        server = ModbusTcpServer(
            [self._sim_device(unit) for unit in self.units.values()] + [self._catch_all()],
            framer=FramerType.SOCKET if self.transport == "tcp" else FramerType.RTU,
            address=(self.host, self.port),
            trace_pdu=self._trace_pdu,
            trace_packet=self._trace_packet,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as error:
            # pymodbus wraps the bind error in a RuntimeError, keeping only its text.
            code = errno.EADDRINUSE if "address already in use" in str(error).lower() else None
            where = f"Modbus emulator cannot listen on {self.host}:{self.port}"
            if code is None:
                raise OSError(f"{where}: {error}") from error
            raise OSError(code, f"{where}: {os.strerror(code)}") from error
        # serve_forever(background=True) leaves the asyncio server listening; port 0 is
        # resolved by the socket it bound.
        sockets = server.transport.sockets  # type: ignore[attr-defined]
        self.port = sockets[0].getsockname()[1]
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every client connection; the units keep their values."""
        if self._server is None:
            return
        self.release()
        await self._snapshot()
        await self._server.shutdown()
        self._server = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # -- reading and setting the memory, as the device's own firmware would ------------------

    async def coils(self, unit: int, address: int = 0, count: int = 1) -> list[bool]:
        return [bool(bit) for bit in await self._get(unit, 1, address, count)]

    async def set_coil(self, unit: int, address: int, value: bool) -> None:
        await self._set(unit, 5, address, [value])

    async def watch_coil(self, unit: int, address: int, watcher: CoilWatcher) -> None:
        """Call `watcher(level)` now with the coil's present level, then whenever the coil is
        written (the level it took: a stuck coil reports the level it stayed at)."""
        if unit not in self.units or not address < len(self.units[unit].coil_states()):
            raise ValueError(f"unit {unit} has no coil {address}")
        if self._server is None:
            level = self.units[unit].coil_states()[address]
        else:
            level = (await self.coils(unit, address, 1))[0]
        watcher(level)
        self._coil_watchers.setdefault((unit, address), []).append(watcher)

    async def registers(
        self, unit: int, function: Literal["input", "holding"], address: int, count: int
    ) -> list[int]:
        return [
            int(word) for word in await self._get(unit, _FUNCTION_CODES[function], address, count)
        ]

    async def set_registers(
        self, unit: int, function: Literal["input", "holding"], address: int, words: Sequence[int]
    ) -> None:
        await self._set(unit, _FUNCTION_CODES[function], address, list(words))

    # -- holding answers back ---------------------------------------------------------------

    def hold(self) -> None:
        """Requests are received (and logged) but not answered until `release()`."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def wait_for_requests(self, count: int) -> None:
        """Until `count` requests in all have been received."""
        while len(self.requests) < count:
            self._arrived.clear()
            await self._arrived.wait()

    # -- inside the server ------------------------------------------------------------------

    def _sim_device(self, unit: EmulatedUnit) -> SimDevice:
        coils = unit.coil_states()
        return SimDevice(
            id=unit.id,
            simdata=(
                [SimData(0, values=coils, datatype=DataType.BITS)] if coils else _no_bits(),
                _no_bits(),
                _register_blocks(unit.holding_registers),
                _register_blocks(unit.input_registers),
            ),
            action=partial(self._action, unit.id),
        )

    def _catch_all(self) -> SimDevice:
        # Unit 0 in pymodbus answers for every unit it does not hold; `_trace_pdu` then
        # silences that answer or turns it into the gateway's exception.
        return SimDevice(id=0, simdata=(_no_bits(), _no_bits(), _no_registers(), _no_registers()))

    async def _action(
        self,
        unit_id: int,
        function: int,
        start: int,
        address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        unit = self.units[unit_id]
        if not self._direct:
            await self._released.wait()
            if unit.exception is not None:
                return ExcCodes(unit.exception)
            if set_values is not None and function in _COIL_WRITES:
                for i in range(len(set_values)):
                    if address + i in unit.stuck:
                        set_values[i] = unit.stuck[address + i]
        if unit.live is not None and set_values is None and function in _READ_KINDS:
            # After the hold: the values are those of the moment the answer goes out.
            unit.live.refresh(_READ_KINDS[function], start, registers)
        if set_values is not None and function in _COIL_WRITES:
            for i, level in enumerate(set_values):
                for watcher in self._coil_watchers.get((unit_id, address + i), ()):
                    watcher(bool(level))
        return None

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append(
                Request(
                    pdu.dev_id,
                    pdu.function_code,
                    pdu.address,
                    pdu.count,
                    tuple(bool(b) for b in pdu.bits) if pdu.function_code in (5, 15) else (),
                )
            )
            self._arrived.set()
            return pdu
        unit = self.units.get(pdu.dev_id)
        if unit is None:
            if self.absent == "silent":
                self._drop_next_answer = True
                return pdu
            answer = ExceptionResponse(pdu.function_code & 0x7F, ExcCodes.GATEWAY_NO_RESPONSE)
            answer.dev_id = pdu.dev_id
            answer.transaction_id = pdu.transaction_id
            return answer
        if unit.silent:
            self._drop_next_answer = True
        if unit.answer_as is not None:
            pdu.dev_id = unit.answer_as
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Called right after `_trace_pdu` for the same answer (pymodbus' pdu_send).
        if sending and self._drop_next_answer:
            self._drop_next_answer = False
            return b""
        return data

    async def _get(
        self, unit: int, function: int, address: int, count: int
    ) -> list[int] | list[bool]:
        server = self._running()
        self._direct = True
        try:
            return await server.async_getValues(unit, function, address, count)
        finally:
            self._direct = False

    async def _set(
        self, unit: int, function: int, address: int, values: list[int] | list[bool]
    ) -> None:
        server = self._running()
        self._direct = True
        try:
            await server.async_setValues(unit, function, address, values)
        finally:
            self._direct = False

    def _running(self) -> ModbusTcpServer:
        if self._server is None:
            raise RuntimeError("the emulated gateway is not running")
        return self._server

    async def _snapshot(self) -> None:
        for unit in self.units.values():
            if coils := unit.coil_states():
                unit.coils = await self.coils(unit.id, 0, len(coils))
            for start, words in unit.input_registers.items():
                unit.input_registers[start] = await self.registers(
                    unit.id, "input", start, len(words)
                )
            for start, words in unit.holding_registers.items():
                unit.holding_registers[start] = await self.registers(
                    unit.id, "holding", start, len(words)
                )


def _register_blocks(blocks: Mapping[int, list[int]]) -> list[SimData]:
    if not blocks:
        return _no_registers()
    return [
        SimData(start, values=list(words), datatype=DataType.REGISTERS)
        for start, words in sorted(blocks.items())
    ]


def _no_bits() -> list[SimData]:
    # pymodbus wants every block non-empty: one bit at the top of the address space, out of
    # any relay module's way.
    return [SimData(65535, values=False, datatype=DataType.BITS)]


def _no_registers() -> list[SimData]:
    return [SimData(65535, datatype=DataType.INVALID)]
