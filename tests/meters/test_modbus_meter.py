"""ModbusMeter as the Metering capability, against emulated meters on a real Modbus TCP line:
a reading, and every way a reading fails becoming DeviceUnreachable (a fault, never usage)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from functools import partial

import pytest
from pymodbus.client import AsyncModbusTcpClient

from amenities.drivers.capabilities import DeviceUnreachable, Measurement, Metering
from csms.simulator.meters import abb_b23, read_registers, running_line, sdm630
from meters.profiles import BUILTIN
from meters.reading import ModbusMeter

SDM630 = BUILTIN["eastron-sdm630"]


@pytest.fixture
async def client() -> AsyncIterator[AsyncModbusTcpClient]:
    line = [sdm630(1), sdm630(2, power_w=float("nan")), abb_b23(3)]
    async with running_line(line) as port:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        assert await client.connect()
        try:
            yield client
        finally:
            client.close()


def meter(
    client: AsyncModbusTcpClient, unit: int, profile_id: str = "eastron-sdm630"
) -> ModbusMeter:
    return ModbusMeter(partial(read_registers, client, unit), BUILTIN[profile_id],
                       address=f"{profile_id} 127.0.0.1/{unit}")


async def test_measure(client: AsyncModbusTcpClient) -> None:
    sdm = meter(client, 1)
    assert isinstance(sdm, Metering)
    assert sdm.address == "eastron-sdm630 127.0.0.1/1"
    assert await sdm.measure() == Measurement(power_w=Decimal("1523.4"), energy_wh=12_345_678)
    assert await sdm.power_w() == Decimal("1523.4")
    assert await sdm.energy_wh() == 12_345_678
    values = await sdm.read_values()
    assert values.voltage_l3_v == Decimal("232.5")


async def test_nan_power_is_a_fault_not_a_reading(client: AsyncModbusTcpClient) -> None:
    sdm = meter(client, 2)
    values = await sdm.read_values()
    assert values.power_w is None and values.not_a_number == {"power_w"}
    assert values.energy_import_wh == 12_345_678
    with pytest.raises(DeviceUnreachable, match="NaN or infinity in power_w") as caught:
        await sdm.measure()
    assert caught.value.address == "eastron-sdm630 127.0.0.1/2"


async def test_exception_answer_is_a_fault(client: AsyncModbusTcpClient) -> None:
    """An SDM630 profile pointed at the ABB: the ABB answers input reads with an exception."""
    with pytest.raises(DeviceUnreachable, match="ModbusExceptionAnswer"):
        await meter(client, 3).measure()


async def test_garbled_answer_is_a_fault() -> None:
    async def short(function: str, address: int, count: int) -> Sequence[int]:
        return [0] * (count - 1)

    sdm = ModbusMeter(short, SDM630, address="short")
    with pytest.raises(DeviceUnreachable, match="malformed answer"):
        await sdm.measure()


async def test_unreachable_line_is_a_fault() -> None:
    async with running_line([sdm630(1)]) as port:
        pass  # closed again: nobody listens on the port
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, timeout=1)
    try:
        with pytest.raises(DeviceUnreachable) as caught:
            await meter(client, 1).measure()
        assert caught.value.address == "eastron-sdm630 127.0.0.1/1"
    finally:
        client.close()
