"""`ModbusCoilRelay` against an emulated relay module (a real pymodbus server): the points of the
shared relay conformance test (switch returns the read-back, is_on, inverted wiring,
unreachable -> DeviceUnreachable after one short try, a stuck coil reads back unchanged), plus
what is particular to Modbus (functions 05 then 01 on the wire, no dead-man timer)."""

from __future__ import annotations

import asyncio

import pytest

from amenities.drivers.capabilities import DeviceUnreachable, Relay
from amenities.drivers.modbus_coil import ModbusCoilRelay
from amenities.drivers.modbus_gateway import ModbusGateway, Transport
from csms.simulator.modbus_devices import EmulatedUnit, ModbusDevices
from tests.amenities.modbus_fixtures import TEST_TIMEOUT_S, modbus_coil_relay

TRANSPORTS: list[Transport] = ["tcp", "rtu-over-tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("inverted", [False, True])
async def test_switch_returns_the_state_read_back(transport: Transport, inverted: bool) -> None:
    async with modbus_coil_relay(transport=transport, inverted=inverted) as subject:
        relay = subject.relay
        assert isinstance(relay, Relay)
        for wanted in (True, False, True):
            assert await relay.switch(wanted) is wanted
            assert await subject.output_on() is wanted
            assert await subject.coil_level() is (wanted != inverted)
            assert await relay.is_on() is wanted
        # the other coils of the module are left alone
        coils = await subject.devices.coils(subject.unit.id, 0, 4)
        assert coils == [False, False, not inverted, False]


async def test_is_on_reports_what_the_module_holds() -> None:
    async with modbus_coil_relay() as subject:
        assert await subject.relay.is_on() is False
        await subject.set_output(True)  # switched at the module, not by us
        assert await subject.relay.is_on() is True
        await subject.set_output(False)
        assert await subject.relay.is_on() is False


async def test_inverted_wiring_writes_the_opposite_level() -> None:
    async with modbus_coil_relay(inverted=True) as subject:
        # normally closed: an idle coil means the machine has power
        assert await subject.relay.is_on() is True
        assert await subject.relay.switch(False) is False
        assert await subject.coil_level() is True
        assert subject.devices.requests[-2].bits == (True,)  # function 05 wrote ON


async def test_write_then_read_back_on_the_wire() -> None:
    async with modbus_coil_relay() as subject:
        # auto_off_s is ignored: a Modbus relay module has no timer, nothing else is sent
        assert await subject.relay.switch(True, auto_off_s=600) is True
        assert [(r.unit, r.function, r.address, r.bits) for r in subject.devices.requests] == [
            (1, 5, 2, (True,)),
            (1, 1, 2, ()),
        ]


async def test_stuck_coil_reads_back_unchanged() -> None:
    async with modbus_coil_relay() as subject:
        await subject.make_stuck()
        assert await subject.relay.switch(True) is False  # acknowledged, did not move
        assert await subject.output_on() is False
        assert await subject.relay.is_on() is False

        await subject.set_output(True)
        await subject.make_stuck()
        assert await subject.relay.switch(False) is True


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unreachable_module_raises_after_one_short_try(transport: Transport) -> None:
    async with modbus_coil_relay(transport=transport) as subject:
        subject.make_unreachable()
        with pytest.raises(DeviceUnreachable) as caught:
            await subject.relay.switch(True)
        assert caught.value.address == subject.relay.address
        assert caught.value.reason == f"write coil 2 on: no answer within {TEST_TIMEOUT_S:g} s"
        # one request (no retries behind the caller's back), bounded by the short timeout
        assert len(subject.devices.requests) == 1

        # backed off: is_on fails at once, without a request; a switch is still tried
        with pytest.raises(DeviceUnreachable, match="backed off until"):
            await subject.relay.is_on()
        assert len(subject.devices.requests) == 1
        with pytest.raises(DeviceUnreachable, match="write coil 2 off: no answer"):
            await subject.relay.switch(False)
        assert len(subject.devices.requests) == 2

        subject.clock.advance(3600)
        with pytest.raises(DeviceUnreachable, match=r"read coils 2\+1: no answer") as caught:
            await subject.relay.is_on()
        assert caught.value.address == subject.relay.address
        assert len(subject.devices.requests) == 3

        subject.make_reachable()
        assert await subject.relay.switch(True) is True
        assert await subject.relay.is_on() is True


async def test_nothing_listening() -> None:
    async with modbus_coil_relay() as subject:
        await subject.devices.stop()
        with pytest.raises(DeviceUnreachable) as caught:
            await subject.relay.switch(True)
        assert caught.value.reason == "write coil 2 on: connection refused or host unreachable"


async def test_address_names_gateway_unit_and_coil() -> None:
    tcp = ModbusGateway("10.0.4.31", 502, "tcp")
    rtu = ModbusGateway("10.0.4.32", 8899, "rtu-over-tcp")
    assert ModbusCoilRelay(tcp).address == "modbus-coil tcp 10.0.4.31:502 unit 1 coil 0"
    relay = ModbusCoilRelay(rtu, unit=4, coil=7, inverted=True)
    assert relay.address == "modbus-coil rtu-over-tcp 10.0.4.32:8899 unit 4 coil 7"


async def test_switch_and_read_back_go_before_queued_meter_reads() -> None:
    module = EmulatedUnit(1, coils=4)
    meter = EmulatedUnit(3, input_registers={0x0000: [1, 2]})
    async with ModbusDevices(module, meter) as devices:
        gateway = ModbusGateway(devices.host, devices.port, timeout_s=TEST_TIMEOUT_S)
        relay = ModbusCoilRelay(gateway, unit=1, coil=0)
        devices.hold()
        reads = [asyncio.create_task(gateway.read_registers(3, "input", 0, 2))]
        await devices.wait_for_requests(1)
        reads += [asyncio.create_task(gateway.read_registers(3, "input", 0, 2)) for _ in range(3)]
        switch = asyncio.create_task(relay.switch(True))
        while gateway.waiting < 4:
            await asyncio.sleep(0)
        devices.release()
        assert await switch is True
        assert await asyncio.gather(*reads) == [[1, 2]] * 4
        assert [(r.unit, r.function) for r in devices.requests] == [
            (3, 4),
            (1, 5),
            (1, 1),
            (3, 4),
            (3, 4),
            (3, 4),
        ]
        await gateway.close()
