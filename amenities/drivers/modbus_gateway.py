"""The one owner of one Modbus connection (OpenEMS's bridge, evcc's shared connection).

A Modbus TCP gateway (or an RTU-over-TCP serial server) answers one request at a time for every
unit behind it: meters and relay modules on the same RS-485 line, told apart by unit id. So
every driver behind one gateway goes through one `ModbusGateway`, which

- serialises the exchanges on its one connection, writes before reads (a relay switched off for
  lack of credit never waits behind a queue of meter reads), each kind in arrival order, and a
  switch's write and read-back in one turn (`write_coil_read_back`);
- turns every failure (no connection, no answer in time, an exception response) into
  `DeviceUnreachable` naming the unit (`modbus tcp 10.0.4.30:502 unit 3`) and a specific reason,
  drops the connection after a failure of the line and opens a new one on the next request;
- backs a failing unit off step by step (5 s, 10 s, 20 s ... up to 5 min; reset by an answer), so
  one dead meter costs the line one short timeout per step instead of one per poll. Reads of a
  backed-off unit fail at once; writes are always tried (a relay switch is never skipped
  silently) and fail as fast as the timeout allows.

The `ModbusGateways` registry, built once in the composition root, hands out the same owner for
the same address.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from amenities.drivers.capabilities import DeviceUnreachable

log = structlog.get_logger("amenities.modbus")

Transport = Literal["tcp", "rtu-over-tcp"]
RegisterFunction = Literal["input", "holding"]
Clock = Callable[[], datetime]

TRANSPORTS: tuple[Transport, ...] = ("tcp", "rtu-over-tcp")

# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7) as staff read them.
EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

_WRITE, _READ = 0, 1  # turn priorities: lower goes first

# Exception responses of a unit that is there and refuses the request itself.
_REFUSALS = frozenset({0x01, 0x02, 0x03})


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a failing unit is skipped: `first_s` after the first failure, doubling with each
    further one, never more than `max_s`."""

    first_s: float = 5.0
    max_s: float = 300.0

    def delay_s(self, failures: int) -> float:
        return min(self.first_s * 2 ** (failures - 1), self.max_s)


@dataclass(slots=True)
class _UnitTrouble:
    failures: int
    until: datetime
    reason: str


class _Turns:
    """Hands the connection to one exchange at a time: the waiter of highest priority next, arrival
    order within a priority. A waiter that is cancelled leaves the line (and passes the turn on
    if it had just been given it), so a cancelled caller never blocks the gateway."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, fut in self._waiting if not fut.done())

    @asynccontextmanager
    async def turn(self, priority: int) -> AsyncIterator[None]:
        if self._busy or self.waiting:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (priority, next(self._arrival), fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._pass_on()  # we were handed the turn as we were cancelled
                else:
                    fut.cancel()  # stays in the heap, skipped when popped
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        while self._waiting:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)
                return  # still busy: the turn went to that waiter
        self._busy = False


class _ConnectionLost(Exception):
    """The gateway closed the connection while we waited for an answer."""


@dataclass(slots=True)
class _Connection:
    client: AsyncModbusTcpClient
    lost: asyncio.Event  # set by pymodbus' disconnect callback

    async def run(
        self, call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]], limit_s: float
    ) -> ModbusPDU:
        """`call` on this connection; raises _ConnectionLost as soon as the connection drops
        (pymodbus itself would wait for its timeout). pymodbus bounds connect and answer by
        its `timeout`; `limit_s` bounds anything else, so no exchange holds the line for good."""
        request = asyncio.ensure_future(call(self.client))
        watch = asyncio.ensure_future(self.lost.wait())
        try:
            async with asyncio.timeout(limit_s):
                await asyncio.wait({request, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not request.done():
                request.cancel()
            request.add_done_callback(_retrieve)
        if not request.done():
            raise _ConnectionLost()
        return request.result()


def _retrieve(task: asyncio.Future[ModbusPDU]) -> None:
    # An abandoned request's outcome is read here, so asyncio does not report it as lost.
    if not task.cancelled():
        task.exception()


class ModbusGateway:
    """One Modbus TCP or RTU-over-TCP connection and every unit behind it."""

    def __init__(
        self,
        host: str,
        port: int = 502,
        transport: Transport = "tcp",
        *,
        timeout_s: float = 2.0,
        backoff: Backoff = Backoff(),
        clock: Clock = system_clock,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.host = host
        self.port = port
        self.transport: Transport = transport
        self.timeout_s = timeout_s
        self._backoff = backoff
        self._clock = clock
        self._turns = _Turns()
        self._connection: _Connection | None = None
        self._trouble: dict[int, _UnitTrouble] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"ModbusGateway({self.host!r}, {self.port}, {self.transport!r})"

    def address(self, unit: int) -> str:
        """How logs and staff name a unit behind this gateway."""
        return f"modbus {self.transport} {self.host}:{self.port} unit {unit}"

    @property
    def waiting(self) -> int:
        """Exchanges queued behind the one in progress."""
        return self._turns.waiting

    def backed_off_until(self, unit: int) -> datetime | None:
        """Until when reads of `unit` are skipped, or None when the unit is not backed off."""
        trouble = self._trouble.get(unit)
        if trouble is None or trouble.until <= self._clock():
            return None
        return trouble.until

    async def read_registers(
        self,
        unit: int,
        function: RegisterFunction,
        address: int,
        count: int,
    ) -> list[int]:
        """`count` 16-bit words from input (function 04) or holding (03) registers."""
        if function == "input":
            code = 4
        elif function == "holding":
            code = 3
        else:
            raise ValueError(f"function must be 'input' or 'holding', not {function!r}")
        what = f"read {function} registers {address}+{count}"

        async def call(client: AsyncModbusTcpClient) -> ModbusPDU:
            if code == 4:
                return await client.read_input_registers(address, count=count, device_id=unit)
            return await client.read_holding_registers(address, count=count, device_id=unit)

        pdu = await self._exchange(unit, what, call, write=False)
        words = list(pdu.registers)
        if len(words) != count:
            raise self._failed(unit, f"{what}: answer holds {len(words)} registers")
        return words

    async def read_coils(self, unit: int, address: int, count: int) -> list[bool]:
        """`count` coils (function 01)."""
        what = f"read coils {address}+{count}"

        async def call(client: AsyncModbusTcpClient) -> ModbusPDU:
            return await client.read_coils(address, count=count, device_id=unit)

        pdu = await self._exchange(unit, what, call, write=False)
        return self._coils(unit, what, pdu, count)

    async def write_coil(self, unit: int, address: int, value: bool) -> None:
        """Write one coil (function 05). Never skipped for backoff: tried, failing fast."""
        what = f"write coil {address} {'on' if value else 'off'}"

        async def call(client: AsyncModbusTcpClient) -> ModbusPDU:
            return await client.write_coil(address, value, device_id=unit)

        await self._exchange(unit, what, call, write=True)

    async def write_coil_read_back(self, unit: int, address: int, value: bool) -> bool:
        """Write one coil (05) and read it back (01) in one turn of the line, so no queued
        read comes between a switch and its confirmation; returns the coil read back.
        Never skipped for backoff, like `write_coil`."""
        what = f"write coil {address} {'on' if value else 'off'}"

        async def call(client: AsyncModbusTcpClient) -> ModbusPDU:
            written = await client.write_coil(address, value, device_id=unit)
            if written.isError():
                return written
            return await client.read_coils(address, count=1, device_id=unit)

        pdu = await self._exchange(unit, what, call, write=True, exchanges=2)
        return self._coils(unit, f"{what}, read back", pdu, 1)[0]

    def _coils(self, unit: int, what: str, pdu: ModbusPDU, count: int) -> list[bool]:
        bits = list(pdu.bits)
        # The answer is padded to whole bytes; fewer bits than asked is malformed.
        if len(bits) < count:
            raise self._failed(unit, f"{what}: answer holds {len(bits)} coils")
        return [bool(bit) for bit in bits[:count]]

    async def close(self) -> None:
        """Close the connection; requests after this fail."""
        self._closed = True
        self._drop_connection()

    # -- one exchange -----------------------------------------------------------------------

    async def _exchange(
        self,
        unit: int,
        what: str,
        call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        *,
        write: bool,
        exchanges: int = 1,
    ) -> ModbusPDU:
        if not write:
            self._refuse_if_backed_off(unit, what)
        limit_s = 2 * self.timeout_s * exchanges
        async with self._turns.turn(_WRITE if write else _READ):
            # Checked again with the turn: reads of a dead unit queued behind its first
            # timeout are skipped instead of each waiting for their own.
            if not write:
                self._refuse_if_backed_off(unit, what)
            if self._closed:
                raise DeviceUnreachable(self.address(unit), "gateway closed")
            reused = self._connection is not None and self._connection.client.connected
            connection = await self._connected(unit, what)
            try:
                try:
                    pdu = await connection.run(call, limit_s)
                except _ConnectionLost:
                    if not reused:
                        raise
                    # Gateways close idle connections; one found dead while we asked is
                    # opened again once, so a long poll period does not cost a failure.
                    self._drop_connection()
                    connection = await self._connected(unit, what)
                    pdu = await connection.run(call, limit_s)
            except (ModbusException, OSError, TimeoutError, _ConnectionLost) as error:
                # A late answer on this connection could be taken for the next request's
                # (RTU framing carries no transaction id): start afresh.
                self._drop_connection()
                raise self._failed(unit, f"{what}: {self._line_failure(error)}") from error
            except asyncio.CancelledError:
                self._drop_connection()  # the same: its answer may still come
                raise
            if pdu.isError():
                code = getattr(pdu, "exception_code", 0)
                name = EXCEPTION_NAMES.get(code, "unknown exception")
                reason = f"{what}: exception response 0x{code:02X} ({name})"
                if code in _REFUSALS:
                    # The unit answered at once: nothing to protect the line from, so no
                    # backoff (and no recovery either: the request is wrong, not the line).
                    log.warning("modbus_request_refused", device=self.address(unit), reason=reason)
                    raise DeviceUnreachable(self.address(unit), reason)
                raise self._failed(unit, reason)
        self._recovered(unit)
        return pdu

    async def _connected(self, unit: int, what: str) -> _Connection:
        if self._connection is not None and self._connection.client.connected:
            return self._connection
        self._drop_connection()
        lost = asyncio.Event()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            framer=FramerType.SOCKET if self.transport == "tcp" else FramerType.RTU,
            timeout=self.timeout_s,
            retries=0,  # one try: a retry is the next poll, not a stall of the line
            reconnect_delay=0,  # no background reconnects: the next request connects
            name=f"{self.host}:{self.port}",
            trace_connect=lambda up: None if up else lost.set(),
        )
        started = asyncio.get_running_loop().time()
        if not await client.connect():
            client.close()
            # pymodbus reports only that it failed; an early failure is a refusal (or no
            # route), one at the timeout is a host that did not answer at all.
            elapsed = asyncio.get_running_loop().time() - started
            reason = (
                f"no connection within {self.timeout_s:g} s"
                if elapsed >= self.timeout_s * 0.9
                else "connection refused or host unreachable"
            )
            raise self._failed(unit, f"{what}: {reason}")
        log.info("modbus_connected", gateway=f"{self.host}:{self.port}", transport=self.transport)
        self._connection = _Connection(client, lost)
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.client.close()
            self._connection = None

    def _line_failure(self, error: BaseException) -> str:
        # pymodbus drops answers from another unit or transaction, so those end as no answer.
        if isinstance(error, TimeoutError | ModbusIOException):
            return f"no answer within {self.timeout_s:g} s"
        if isinstance(error, _ConnectionLost | ConnectionException):
            return "connection closed by the gateway"
        return f"connection failed ({error})"

    # -- backoff ----------------------------------------------------------------------------

    def _refuse_if_backed_off(self, unit: int, what: str) -> None:
        trouble = self._trouble.get(unit)
        if trouble is not None and trouble.until > self._clock():
            raise DeviceUnreachable(
                self.address(unit),
                f"backed off until {trouble.until.isoformat(timespec='seconds')} after "
                f"{trouble.failures} failure(s); last: {trouble.reason}",
            )

    def _failed(self, unit: int, reason: str) -> DeviceUnreachable:
        previous = self._trouble.get(unit)
        failures = 1 if previous is None else previous.failures + 1
        delay = self._backoff.delay_s(failures)
        self._trouble[unit] = _UnitTrouble(
            failures, self._clock() + timedelta(seconds=delay), reason
        )
        log.warning(
            "modbus_unit_failed",
            device=self.address(unit),
            reason=reason,
            failures=failures,
            backoff_s=delay,
        )
        return DeviceUnreachable(self.address(unit), reason)

    def _recovered(self, unit: int) -> None:
        if self._trouble.pop(unit, None) is not None:
            log.info("modbus_unit_recovered", device=self.address(unit))


class ModbusGateways:
    """Every gateway of a site, one owner per host and port (built in the composition root)."""

    def __init__(
        self,
        *,
        timeout_s: float = 2.0,
        backoff: Backoff = Backoff(),
        clock: Clock = system_clock,
    ) -> None:
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._clock = clock
        self._gateways: dict[tuple[str, int], ModbusGateway] = {}

    def gateway(self, host: str, port: int = 502, transport: Transport = "tcp") -> ModbusGateway:
        """The owner of `host:port`; the same one for every device behind it. One address
        spoken with two framings is a configuration error."""
        existing = self._gateways.get((host, port))
        if existing is not None:
            if existing.transport != transport:
                raise ValueError(
                    f"{host}:{port} is used with transport {existing.transport} "
                    f"and {transport}; one gateway speaks one"
                )
            return existing
        gateway = ModbusGateway(
            host,
            port,
            transport,
            timeout_s=self._timeout_s,
            backoff=self._backoff,
            clock=self._clock,
        )
        self._gateways[(host, port)] = gateway
        return gateway

    def all(self) -> list[ModbusGateway]:
        return list(self._gateways.values())

    async def close(self) -> None:
        for gateway in self._gateways.values():
            await gateway.close()
        self._gateways.clear()
