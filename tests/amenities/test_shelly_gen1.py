"""The Shelly Gen1 driver on the wire: `/relay/<channel>` with `turn` and `timer`, `/status` with
its watt-minute register, basic auth, and a specific reason for each way a device fails."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from amenities.drivers.capabilities import DeviceUnreachable, Measurement
from amenities.drivers.shelly_gen1 import ShellyGen1, shelly_client
from csms.simulator.httpdevice import ManualClock
from csms.simulator.shelly import ShellyGen1Emulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def device(clock: ManualClock) -> AsyncIterator[ShellyGen1Emulator]:
    async with ShellyGen1Emulator(channels=2, clock=clock) as device:
        yield device


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shelly_client() as client:
        yield client


def driver(
    client: httpx.AsyncClient,
    device: ShellyGen1Emulator,
    channel: int = 0,
    *,
    username: str | None = None,
    password: str | None = None,
    inverted: bool = False,
    timeout_s: float = 3.0,
) -> ShellyGen1:
    return ShellyGen1(
        client,
        host=device.host,
        port=device.port,
        channel=channel,
        username=username,
        password=password,
        inverted=inverted,
        timeout_s=timeout_s,
    )


async def test_switch_is_one_relay_request_whose_answer_is_the_read_back(
    client: httpx.AsyncClient, device: ShellyGen1Emulator
) -> None:
    relay = driver(client, device, channel=1)
    assert relay.address == f"shelly-gen1 127.0.0.1:{device.port}/1"
    assert await relay.switch(True, auto_off_s=90) is True
    assert await relay.switch(False, auto_off_s=90) is False  # no timer with off
    assert await driver(client, device, channel=1, inverted=True).switch(True, auto_off_s=20)
    assert [(r.method, r.target) for r in device.requests] == [
        ("GET", "/relay/1?turn=on&timer=90"),
        ("GET", "/relay/1?turn=off"),
        ("GET", "/relay/1?turn=off&timer=20"),
    ]
    assert [device.output(0), device.output(1)] == [False, False]


async def test_the_register_counts_watt_minutes_and_the_driver_floors_to_wh(
    client: httpx.AsyncClient, device: ShellyGen1Emulator, clock: ManualClock
) -> None:
    relay = driver(client, device, channel=1)
    device.channel(1).energy_ws = 7199 * 60  # `total` 7199 Wmin = 119.98 Wh
    assert await relay.energy_wh() == 119
    device.set_power(1, 600)
    await relay.switch(True)
    clock.advance(60)  # 600 W for a minute: 600 Wmin more
    assert await relay.measure() == Measurement(power_w=Decimal(600), energy_wh=129)  # 7799 Wmin
    status = device.requests[-1]
    assert status.target == "/status"


async def test_basic_auth_sends_the_configured_login(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen1Emulator(username="laundry", password="s3cret:ok", clock=clock) as locked:
        assert await driver(client, locked, username="laundry", password="s3cret:ok").switch(True)
        token = base64.b64encode(b"laundry:s3cret:ok").decode()
        assert locked.requests[0].headers["authorization"] == f"Basic {token}"


async def test_a_password_alone_logs_in_as_admin(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen1Emulator(password="pw", clock=clock) as locked:
        assert await driver(client, locked, password="pw").is_on() is False
        token = base64.b64encode(b"admin:pw").decode()
        assert locked.requests[0].headers["authorization"] == f"Basic {token}"


async def test_a_device_with_a_login_and_none_configured_says_so(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen1Emulator(password="pw", clock=clock) as locked:
        with pytest.raises(DeviceUnreachable, match="none is configured"):
            await driver(client, locked).switch(True)
        locked.bad_password = True
        with pytest.raises(DeviceUnreachable, match="authentication refused"):
            await driver(client, locked, password="pw").switch(True)
        assert locked.output(0) is False


async def test_a_channel_the_device_does_not_have(
    client: httpx.AsyncClient, device: ShellyGen1Emulator
) -> None:
    relay = driver(client, device, channel=2)
    with pytest.raises(DeviceUnreachable) as switched:
        await relay.switch(True)
    assert switched.value.reason == "HTTP 404 for /relay/2: 'Not Found'"
    with pytest.raises(DeviceUnreachable) as read:
        await relay.is_on()
    assert read.value.reason == "malformed answer: /status has no relays[2]"


async def test_a_relay_without_metering_is_a_fault_when_measured(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen1Emulator(clock=clock, metering=False) as plain:
        relay = driver(client, plain)
        assert await relay.switch(True) is True
        with pytest.raises(DeviceUnreachable, match="no 'meters' in /status"):
            await relay.measure()


async def test_an_answer_that_is_not_json_is_malformed(
    client: httpx.AsyncClient, device: ShellyGen1Emulator
) -> None:
    device.malformed = True
    with pytest.raises(DeviceUnreachable, match="malformed answer, not JSON"):
        await driver(client, device).switch(True)


async def test_silence_names_the_configured_timeout(
    client: httpx.AsyncClient, device: ShellyGen1Emulator
) -> None:
    device.unreachable = True
    with pytest.raises(DeviceUnreachable) as raised:
        await driver(client, device, timeout_s=0.2).measure()
    assert raised.value.reason == "no answer within 0.2 s"
