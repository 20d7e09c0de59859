"""The Modbus gateway owner against a real pymodbus server (Modbus TCP and RTU-over-TCP):
one exchange at a time, writes before queued reads, failures as DeviceUnreachable with a
specific reason, per-unit backoff on a fake clock, reconnection after the gateway restarts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from amenities.drivers.capabilities import DeviceUnreachable
from amenities.drivers.modbus_gateway import (
    Backoff,
    ModbusGateway,
    ModbusGateways,
    Transport,
)
from csms.simulator.modbus_devices import EmulatedUnit, ModbusDevices
from tests.amenities.modbus_fixtures import TEST_TIMEOUT_S, FakeClock

TRANSPORTS: list[Transport] = ["tcp", "rtu-over-tcp"]

RELAY, METER, DEAD = 1, 3, 7


def units() -> list[EmulatedUnit]:
    return [
        EmulatedUnit(RELAY, coils=[False, True, False, False]),
        EmulatedUnit(
            METER,
            input_registers={0x0000: [0x4366, 0x0000], 0x0156: [0x4479, 0x8000, 0x0001]},
            holding_registers={0x0010: [500, 600]},
        ),
        EmulatedUnit(DEAD, input_registers={0x0000: [1, 2]}, silent=True),
    ]


@pytest.fixture(params=TRANSPORTS)
async def devices(request: pytest.FixtureRequest) -> AsyncIterator[ModbusDevices]:
    async with ModbusDevices(*units(), transport=request.param) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def gateway(devices: ModbusDevices, clock: FakeClock) -> AsyncIterator[ModbusGateway]:
    owner = ModbusGateway(
        devices.host, devices.port, devices.transport, timeout_s=TEST_TIMEOUT_S, clock=clock
    )
    yield owner
    await owner.close()


def unit_requests(devices: ModbusDevices, unit: int) -> int:
    return sum(1 for request in devices.requests if request.unit == unit)


async def reason_of(call: object) -> str:
    assert asyncio.iscoroutine(call)
    with pytest.raises(DeviceUnreachable) as caught:
        await call
    return caught.value.reason


# -- the exchanges ------------------------------------------------------------------------------


async def test_reads_and_writes_what_the_units_hold(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    assert await gateway.read_registers(METER, "input", 0x0156, 3) == [0x4479, 0x8000, 1]
    assert await gateway.read_registers(METER, "holding", 0x0010, 2) == [500, 600]
    assert await gateway.read_coils(RELAY, 0, 4) == [False, True, False, False]

    await gateway.write_coil(RELAY, 2, True)
    assert await devices.coils(RELAY, 0, 4) == [False, True, True, False]
    await gateway.write_coil(RELAY, 1, False)
    assert await gateway.read_coils(RELAY, 0, 4) == [False, False, True, False]

    await devices.set_registers(METER, "input", 0x0156, [0x447A, 0x0000, 2])
    assert await gateway.read_registers(METER, "input", 0x0156, 3) == [0x447A, 0, 2]
    # what went over the wire: function codes 04, 03, 01, 05, 05, 01, 04 for the right units
    assert [(r.unit, r.function) for r in devices.requests] == [
        (METER, 4),
        (METER, 3),
        (RELAY, 1),
        (RELAY, 5),
        (RELAY, 5),
        (RELAY, 1),
        (METER, 4),
    ]


async def test_one_exchange_at_a_time_and_writes_before_queued_reads(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    devices.hold()
    in_flight = asyncio.create_task(gateway.read_registers(METER, "input", 0x0000, 2))
    await devices.wait_for_requests(1)
    reads = [
        asyncio.create_task(gateway.read_registers(METER, "holding", 0x0010, 2)),
        asyncio.create_task(gateway.read_registers(METER, "input", 0x0156, 3)),
    ]
    await asyncio.sleep(0)
    write = asyncio.create_task(gateway.write_coil(RELAY, 0, True))
    await asyncio.sleep(0)
    switch = asyncio.create_task(gateway.write_coil_read_back(RELAY, 3, True))
    while gateway.waiting < 4:
        await asyncio.sleep(0)
    # four exchanges wait, none of them on the wire while the first is unanswered
    assert len(devices.requests) == 1

    devices.release()
    assert await in_flight == [0x4366, 0]
    await write
    assert await switch is True
    assert [await read for read in reads] == [[500, 600], [0x4479, 0x8000, 1]]
    # the writes went before the reads queued earlier, in their own order, and a switch's
    # read-back right after its write
    assert [(r.unit, r.function, r.address) for r in devices.requests] == [
        (METER, 4, 0x0000),
        (RELAY, 5, 0),
        (RELAY, 5, 3),
        (RELAY, 1, 3),
        (METER, 3, 0x0010),
        (METER, 4, 0x0156),
    ]


async def test_a_cancelled_waiter_does_not_block_the_line(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    devices.hold()
    in_flight = asyncio.create_task(gateway.read_coils(RELAY, 0, 2))
    await devices.wait_for_requests(1)
    given_up = asyncio.create_task(gateway.read_registers(METER, "input", 0, 2))
    while gateway.waiting < 1:
        await asyncio.sleep(0)
    given_up.cancel()
    devices.release()
    assert await in_flight == [False, True]
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert gateway.waiting == 0
    assert await gateway.read_registers(METER, "holding", 0x0010, 1) == [500]
    assert [r.function for r in devices.requests] == [1, 3]


# -- failures -----------------------------------------------------------------------------------


async def test_exception_responses_name_the_code_and_unit(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    with pytest.raises(DeviceUnreachable) as caught:
        await gateway.read_registers(METER, "input", 0x0100, 2)
    host_port = f"{devices.host}:{devices.port}"
    assert caught.value.address == f"modbus {devices.transport} {host_port} unit {METER}"
    assert caught.value.reason == (
        "read input registers 256+2: exception response 0x02 (illegal data address)"
    )
    # a refusal by a unit that answered at once costs the line nothing: no backoff
    assert gateway.backed_off_until(METER) is None
    assert await gateway.read_registers(METER, "input", 0x0000, 2) == [0x4366, 0]

    devices.units[METER].exception = 0x0B
    reason = await reason_of(gateway.read_registers(METER, "input", 0x0000, 2))
    assert reason.endswith("exception response 0x0B (gateway target device failed to respond)")
    assert gateway.backed_off_until(METER) is not None


async def test_unit_the_gateway_does_not_know(clock: FakeClock) -> None:
    async with ModbusDevices(*units(), absent="exception") as devices:
        gateway = ModbusGateway(devices.host, devices.port, timeout_s=TEST_TIMEOUT_S, clock=clock)
        reason = await reason_of(gateway.read_coils(42, 0, 1))
        assert reason == (
            "read coils 0+1: exception response 0x0B (gateway target device failed to respond)"
        )
        await gateway.close()
    async with ModbusDevices(*units(), absent="silent") as devices:
        gateway = ModbusGateway(devices.host, devices.port, timeout_s=TEST_TIMEOUT_S, clock=clock)
        reason = await reason_of(gateway.read_coils(42, 0, 1))
        assert reason == f"read coils 0+1: no answer within {TEST_TIMEOUT_S:g} s"
        assert await gateway.read_coils(RELAY, 0, 2) == [False, True]
        await gateway.close()


async def test_answer_from_another_unit_is_no_answer(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    devices.units[METER].answer_as = 9
    reason = await reason_of(gateway.read_registers(METER, "input", 0, 2))
    assert reason == f"read input registers 0+2: no answer within {TEST_TIMEOUT_S:g} s"
    # the next request gets its own answer, not the stray one
    assert await gateway.read_coils(RELAY, 0, 2) == [False, True]


async def test_nothing_listening_is_refused_quickly(clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = ModbusGateway("127.0.0.1", port, timeout_s=5.0, clock=clock)
    with pytest.raises(DeviceUnreachable) as caught:
        await gateway.write_coil(1, 0, True)
    assert caught.value.address == f"modbus tcp 127.0.0.1:{port} unit 1"
    assert caught.value.reason == "write coil 0 on: connection refused or host unreachable"
    await gateway.close()


# -- backoff ------------------------------------------------------------------------------------


async def test_dead_unit_is_backed_off_while_the_others_answer(
    devices: ModbusDevices, gateway: ModbusGateway, clock: FakeClock
) -> None:
    timeout = f"no answer within {TEST_TIMEOUT_S:g} s"
    assert await reason_of(gateway.read_registers(DEAD, "input", 0, 2)) == (
        f"read input registers 0+2: {timeout}"
    )
    assert await gateway.read_registers(METER, "input", 0, 2) == [0x4366, 0]

    # skipped without a request on the line, the others unaffected
    for _ in range(3):
        reason = await reason_of(gateway.read_registers(DEAD, "input", 0, 2))
        assert reason == (
            "backed off until 2026-12-02T12:00:05+00:00 after 1 failure(s); "
            f"last: read input registers 0+2: {timeout}"
        )
        assert await gateway.read_coils(RELAY, 1, 1) == [True]
    assert unit_requests(devices, DEAD) == 1

    # 5 s, then 10 s, then 20 s
    steps = []
    for _ in range(3):
        until = gateway.backed_off_until(DEAD)
        assert until is not None
        steps.append((until - clock()).total_seconds())
        clock.now = until
        await reason_of(gateway.read_registers(DEAD, "input", 0, 2))
    assert steps == [5.0, 10.0, 20.0]
    assert unit_requests(devices, DEAD) == 4

    # back on the line: the first answer ends the backoff, the next failure starts at 5 s again
    devices.units[DEAD].silent = False
    clock.advance(40)
    assert await gateway.read_registers(DEAD, "input", 0, 2) == [1, 2]
    assert gateway.backed_off_until(DEAD) is None
    devices.units[DEAD].silent = True
    await reason_of(gateway.read_registers(DEAD, "input", 0, 2))
    until = gateway.backed_off_until(DEAD)
    assert until is not None and (until - clock()).total_seconds() == 5.0


async def test_backoff_is_capped() -> None:
    backoff = Backoff(first_s=5, max_s=300)
    assert [backoff.delay_s(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]


async def test_reads_queued_behind_a_dead_units_timeout_are_skipped(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    first = asyncio.create_task(gateway.read_registers(DEAD, "input", 0, 2))
    await devices.wait_for_requests(1)
    queued = [asyncio.create_task(gateway.read_registers(DEAD, "input", 0, 2)) for _ in range(3)]
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert all(isinstance(result, DeviceUnreachable) for result in results)
    assert [str(r).split(": ", 1)[1].startswith("backed off") for r in results] == [
        False,
        True,
        True,
        True,
    ]
    assert unit_requests(devices, DEAD) == 1


async def test_writes_are_tried_even_while_backed_off(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    relay = devices.units[RELAY]
    relay.silent = True
    await reason_of(gateway.read_coils(RELAY, 0, 1))
    assert gateway.backed_off_until(RELAY) is not None

    reason = await reason_of(gateway.write_coil(RELAY, 3, True))
    assert reason == f"write coil 3 on: no answer within {TEST_TIMEOUT_S:g} s"
    assert unit_requests(devices, RELAY) == 2

    relay.silent = False
    await gateway.write_coil(RELAY, 3, True)
    assert await devices.coils(RELAY, 3, 1) == [True]
    assert gateway.backed_off_until(RELAY) is None  # an answer ends the backoff
    assert await gateway.read_coils(RELAY, 3, 1) == [True]


# -- the connection -----------------------------------------------------------------------------


async def test_reconnects_after_the_gateway_restarts(
    devices: ModbusDevices, gateway: ModbusGateway, clock: FakeClock
) -> None:
    await gateway.write_coil(RELAY, 0, True)
    await devices.restart()
    # a new connection, and the module kept its coil
    assert await gateway.read_coils(RELAY, 0, 2) == [True, True]

    await devices.stop()
    reason = await reason_of(gateway.read_registers(METER, "input", 0, 2))
    assert reason == "read input registers 0+2: connection refused or host unreachable"
    await devices.start()
    clock.advance(5)
    assert await gateway.read_registers(METER, "input", 0, 2) == [0x4366, 0]


async def test_a_connection_dropped_while_idle_is_opened_again(
    devices: ModbusDevices, gateway: ModbusGateway
) -> None:
    assert await gateway.read_coils(RELAY, 0, 2) == [False, True]
    # the restart closes the connection; the next request must not pay a timeout for it,
    # whether or not the close has reached the client yet
    await devices.restart()
    assert await gateway.read_coils(RELAY, 0, 2) == [False, True]
    assert gateway.backed_off_until(RELAY) is None


async def test_closed_gateway_refuses(devices: ModbusDevices, gateway: ModbusGateway) -> None:
    await gateway.close()
    assert await reason_of(gateway.write_coil(RELAY, 0, True)) == "gateway closed"
    assert devices.requests == []


async def test_arguments_are_checked(gateway: ModbusGateway) -> None:
    with pytest.raises(ValueError, match="input"):
        await gateway.read_registers(METER, "coils", 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transport"):
        ModbusGateway("127.0.0.1", 502, "udp")  # type: ignore[arg-type]


# -- the registry -------------------------------------------------------------------------------


async def test_registry_hands_out_one_owner_per_address(clock: FakeClock) -> None:
    gateways = ModbusGateways(timeout_s=TEST_TIMEOUT_S, clock=clock)
    first = gateways.gateway("10.0.4.30", 502, "tcp")
    assert gateways.gateway("10.0.4.30", 502, "tcp") is first
    assert gateways.gateway("10.0.4.30") is first
    other = gateways.gateway("10.0.4.30", 503, "rtu-over-tcp")
    assert other is not first and other.transport == "rtu-over-tcp"
    assert gateways.gateway("10.0.4.31").address(3) == "modbus tcp 10.0.4.31:502 unit 3"
    assert other.address(3) == "modbus rtu-over-tcp 10.0.4.30:503 unit 3"
    with pytest.raises(ValueError, match=r"10\.0\.4\.30:502 is used with transport tcp"):
        gateways.gateway("10.0.4.30", 502, "rtu-over-tcp")
    assert len(gateways.all()) == 3


async def test_registry_close_closes_every_gateway(clock: FakeClock) -> None:
    async with (
        ModbusDevices(*units()) as tcp,
        ModbusDevices(*units(), transport="rtu-over-tcp") as rtu,
    ):
        gateways = ModbusGateways(timeout_s=TEST_TIMEOUT_S, clock=clock)
        a = gateways.gateway(tcp.host, tcp.port, "tcp")
        b = gateways.gateway(rtu.host, rtu.port, "rtu-over-tcp")
        assert await a.read_coils(RELAY, 0, 2) == [False, True]
        assert await b.read_coils(RELAY, 0, 2) == [False, True]
        await gateways.close()
        for gateway in (a, b):
            assert await reason_of(gateway.read_coils(RELAY, 0, 2)) == "gateway closed"
        assert gateways.all() == []
