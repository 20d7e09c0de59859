"""Living meters (csms.simulator.meters.EmulatedMeter) read the way Volthaus reads a meter:
`meters.reading.read_meter` with the built-in profile, over a real pymodbus client or the
gateway owner, against a `MeterLine` on 127.0.0.1. Time is a ManualClock."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from amenities.drivers.modbus_coil import ModbusCoilRelay
from amenities.drivers.modbus_gateway import ModbusGateway, Transport
from csms.simulator.httpdevice import ManualClock
from csms.simulator.loads import ConstantLoad, household_load
from csms.simulator.meters import (
    EmulatedMeter,
    MeterLine,
    encode,
    link_supply,
    read_registers,
)
from csms.simulator.modbus_devices import EmulatedUnit
from meters.profiles import BUILTIN
from meters.reading import read_meter
from meters.registers import MeterValues, scaled_value

RELAY_UNIT = 9


@pytest.fixture(params=["tcp", "rtu-over-tcp"])
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param  # type: ignore[no-any-return]


ClientOf = Callable[[int], AsyncModbusTcpClient]


@pytest.fixture
async def client_of(transport: Transport) -> AsyncIterator[ClientOf]:
    """A pymodbus client of the transport under test, for a server's port (closed after)."""
    clients: list[AsyncModbusTcpClient] = []

    def connect(port: int) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient(
            "127.0.0.1",
            port=port,
            framer=FramerType.SOCKET if transport == "tcp" else FramerType.RTU,
            timeout=2,
        )
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


async def reading(client: AsyncModbusTcpClient, meter: EmulatedMeter) -> MeterValues:
    return await read_meter(functools.partial(read_registers, client, meter.unit), meter.profile)


async def test_sdm630_and_em24_count_load_times_time_and_stop_when_the_coil_opens(
    transport: Transport, client_of: ClientOf
) -> None:
    clock = ManualClock()
    sdm630 = EmulatedMeter("eastron-sdm630", 1, 1200, energy_wh=4_512_345, clock=clock)
    em24 = EmulatedMeter("carlo-gavazzi-em24", 2, Decimal(2000), energy_wh=12_345_600, clock=clock)
    module = EmulatedUnit(RELAY_UNIT, coils=[True, True, False, False])
    async with MeterLine(sdm630, em24, relays=[module], transport=transport) as line:
        await link_supply(sdm630, line, unit=RELAY_UNIT, coil=0)
        await link_supply(em24, line, unit=RELAY_UNIT, coil=1)
        client = client_of(line.port)
        await client.connect()

        first = await reading(client, sdm630)
        assert first.energy_import_wh == 4_512_345
        assert first.power_w == Decimal(1200)
        assert (first.voltage_l1_v, first.voltage_l2_v, first.voltage_l3_v) == (
            Decimal("231.2"), Decimal("229.8"), Decimal("230.5"),
        )
        # 1200 W over three phases: 400 W each.
        assert first.current_l1_a == Decimal("1.730")
        assert first.current_l2_a == Decimal("1.741")

        em24_first = await reading(client, em24)
        assert em24_first.energy_import_wh == 12_345_600
        assert em24_first.power_w == Decimal(2000)
        assert em24_first.voltage_l3_v == Decimal("230.5")
        assert em24_first.current_l1_a == Decimal("2.884")  # 2000 W / 3 / 231.2 V

        clock.advance(1800)  # half an hour
        assert (await reading(client, sdm630)).energy_import_wh == 4_512_345 + 600
        assert (await reading(client, em24)).energy_import_wh == 12_345_600 + 1000

        # The EM24 counts in 0.1 kWh: 50 Wh more is not yet a step on its register.
        clock.advance(90)
        assert (await reading(client, sdm630)).energy_import_wh == 4_512_345 + 630
        assert (await reading(client, em24)).energy_import_wh == 12_345_600 + 1000

        # The disconnect relay of the SDM630's flat opens (a master writes the coil).
        assert not (await client.write_coil(0, False, device_id=RELAY_UNIT)).isError()
        clock.advance(3600)
        cut = await reading(client, sdm630)
        assert cut.energy_import_wh == 4_512_345 + 630
        assert cut.power_w == 0 and cut.current_l1_a == 0
        assert cut.voltage_l1_v == Decimal("231.2")  # the meter sits before the relay
        assert (await reading(client, em24)).energy_import_wh == 12_345_600 + 3000  # still fed

        # Closed again (at the module itself): counting resumes from where it stood.
        await line.set_coil(RELAY_UNIT, 0, True)
        clock.advance(60)
        assert (await reading(client, sdm630)).energy_import_wh == 4_512_345 + 650


async def test_the_coil_is_switched_by_the_modbus_coil_driver_through_the_gateway() -> None:
    clock = ManualClock()
    flat = EmulatedMeter("eastron-sdm120", 3, 460, energy_wh=700, clock=clock)
    async with MeterLine(flat, relays=[EmulatedUnit(RELAY_UNIT, coils=4)]) as line:
        # Normally-closed wiring: the flat has power while the coil is off.
        await link_supply(flat, line, unit=RELAY_UNIT, coil=2, inverted=True)
        gateway = ModbusGateway(line.host, line.port, timeout_s=2)
        try:
            relay = ModbusCoilRelay(gateway, unit=RELAY_UNIT, coil=2, inverted=True)
            read = functools.partial(gateway.read_registers, flat.unit)
            clock.advance(3600)
            values = await read_meter(read, flat.profile)
            assert (values.energy_import_wh, values.power_w) == (1160, Decimal(460))
            assert values.current_l1_a == Decimal("1.990")  # one phase: 460 W at 231.2 V
            assert await relay.switch(False) is False
            clock.advance(3600)
            values = await read_meter(read, flat.profile)
            assert (values.energy_import_wh, values.power_w) == (1160, Decimal(0))
            assert flat.supplied is False
        finally:
            await gateway.close()


@pytest.mark.parametrize("profile_id", sorted(BUILTIN))
async def test_every_builtin_profile_reads_back_what_the_meter_holds(profile_id: str) -> None:
    clock = ManualClock()
    meter = EmulatedMeter(profile_id, 5, 1523.4, energy_wh=123_456_700, clock=clock)
    async with MeterLine(meter) as line:
        client = AsyncModbusTcpClient("127.0.0.1", port=line.port, timeout=2)
        await client.connect()
        try:
            values = await reading(client, meter)
        finally:
            client.close()
    profile = BUILTIN[profile_id]
    assert values.complete and not values.not_a_number
    # Whole Wh in the register's own resolution (ABB 10 Wh, EM24 100 Wh; a float32 of kWh
    # near 123 456 kWh is good to 8 Wh).
    assert values.energy_import_wh is not None
    assert abs(values.energy_import_wh - 123_456_700) < max(
        profile.registers["energy_import_wh"].scale, Decimal(8)
    )
    assert values.power_w is not None and abs(values.power_w - Decimal("1523.4")) < 1
    for key in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v"):
        if key in profile.registers:
            assert getattr(values, key) > 229
        else:
            assert getattr(values, key) is None


def test_encode_follows_type_word_order_and_scale() -> None:
    em24 = BUILTIN["carlo-gavazzi-em24"].registers
    # kWh*10, INT32 low word first: 123 456.7 kWh is 1 234 567 = 0x0012D687
    assert encode(em24["energy_import_wh"], Decimal(123_456_789), floor=True) == [0xD687, 0x0012]
    abb = BUILTIN["abb-b23"].registers
    assert encode(abb["power_w"], Decimal("-1523.45")) == [0xFFFD, 0xACE7]  # 0.01 W, signed
    sdm = BUILTIN["eastron-sdm630"].registers["energy_import_wh"]
    assert encode(sdm, Decimal(1000600)) == [0x447A, 0x2666]  # 1000.6 kWh, float32
    for register, value in ((sdm, Decimal(1000600)), (em24["power_w"], Decimal("2.5"))):
        assert scaled_value(register, encode(register, value)) == value


async def test_a_living_meter_follows_a_load_curve_and_a_new_load() -> None:
    clock = ManualClock()
    curve = household_load(7)
    meter = EmulatedMeter("abb-b23", 1, curve, clock=clock)
    clock.advance(3600)
    assert meter.energy_wh() == pytest.approx(curve.energy_ws(0, 3600) / 3600)
    assert meter.power_w() == pytest.approx(curve.watts_at(3600))
    meter.set_load_w(100)
    assert isinstance(meter.load, ConstantLoad)
    clock.advance(36)
    assert meter.energy_wh() == pytest.approx(curve.energy_ws(0, 3600) / 3600 + 1)


def test_an_unknown_profile_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'eastron-sdm999'"):
        EmulatedMeter("eastron-sdm999", 1)


async def test_a_taken_port_is_named() -> None:
    async with MeterLine(EmulatedMeter("eastron-sdm630", 1)) as first:
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            async with MeterLine(EmulatedMeter("eastron-sdm630", 1), port=first.port):
                pass
