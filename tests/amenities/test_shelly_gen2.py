"""The Shelly Gen2 driver on the wire: the exact JSON-RPC frames it sends, digest auth as the
device asks for it, and a specific reason for each way a device fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.request import parse_http_list

import httpx
import pytest

from amenities.drivers.capabilities import DeviceUnreachable, Measurement
from amenities.drivers.shelly_gen2 import ShellyGen2, shelly_client
from csms.simulator.httpdevice import ManualClock
from csms.simulator.shelly import ShellyGen2Emulator

PASSWORD = "wash&dry-2026"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def device(clock: ManualClock) -> AsyncIterator[ShellyGen2Emulator]:
    async with ShellyGen2Emulator(channels=4, clock=clock) as device:
        yield device


@pytest.fixture
async def locked(clock: ManualClock) -> AsyncIterator[ShellyGen2Emulator]:
    async with ShellyGen2Emulator(channels=2, password=PASSWORD, clock=clock) as device:
        yield device


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shelly_client() as client:
        yield client


def driver(
    client: httpx.AsyncClient,
    device: ShellyGen2Emulator,
    channel: int = 0,
    *,
    password: str | None = None,
    inverted: bool = False,
    timeout_s: float = 3.0,
) -> ShellyGen2:
    return ShellyGen2(
        client,
        host=device.host,
        port=device.port,
        channel=channel,
        password=password,
        inverted=inverted,
        timeout_s=timeout_s,
    )


def digest_fields(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Digest"
    pairs = (item.partition("=") for item in parse_http_list(rest))
    return {key.strip(): value.strip('"') for key, _, value in pairs}


async def test_switch_sends_switch_set_with_the_dead_man_then_reads_back(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    relay = driver(client, device, channel=2)
    assert relay.address == f"shelly-gen2 127.0.0.1:{device.port}/2"

    assert await relay.switch(True, auto_off_s=60) is True

    set_request, status_request = device.requests
    assert (set_request.method, set_request.path) == ("POST", "/rpc")
    assert set_request.headers["content-type"] == "application/json"
    set_frame = json.loads(set_request.body)
    status_frame = json.loads(status_request.body)
    assert set_frame == {
        "id": set_frame["id"],
        "method": "Switch.Set",
        "params": {"id": 2, "on": True, "toggle_after": 60},
    }
    assert status_frame == {
        "id": set_frame["id"] + 1,
        "method": "Switch.GetStatus",
        "params": {"id": 2},
    }
    assert [device.output(i) for i in range(4)] == [False, False, True, False]


async def test_the_dead_man_is_only_sent_with_on_and_inverted_wiring_sends_the_opposite(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    await driver(client, device).switch(False, auto_off_s=60)
    await driver(client, device).switch(True)
    await driver(client, device, inverted=True).switch(True, auto_off_s=45)
    sets = [params for method, params in device.calls if method == "Switch.Set"]
    assert sets == [
        {"id": 0, "on": False},
        {"id": 0, "on": True},
        {"id": 0, "on": False, "toggle_after": 45},
    ]


async def test_the_timer_flips_the_output_and_energy_stops_with_it(
    client: httpx.AsyncClient, device: ShellyGen2Emulator, clock: ManualClock
) -> None:
    relay = driver(client, device, channel=1)
    device.set_power(1, 1000)
    await relay.switch(True, auto_off_s=60)
    clock.advance(30)
    assert await relay.measure() == Measurement(power_w=Decimal(1000), energy_wh=8)  # 8.333 Wh
    clock.advance(90)  # the timer fired at 60 s
    assert await relay.measure() == Measurement(power_w=Decimal(0), energy_wh=16)  # 16.667 Wh
    assert device.energy_wh(1) == pytest.approx(1000 * 60 / 3600)


async def test_the_register_is_floored_from_the_decimal_the_device_wrote(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    relay = driver(client, device, channel=3)
    device.set_energy(3, Decimal("123456.999"))
    assert await relay.energy_wh() == 123456
    device.set_energy(3, Decimal("0.4"))
    assert await relay.energy_wh() == 0


async def test_power_below_zero_at_no_load_reads_zero(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    relay = driver(client, device)
    await relay.switch(True)
    device.channel(0).load_w = -0.4  # the PM's noise floor, which set_power refuses
    assert await relay.power_w() == Decimal(0)


async def test_digest_auth_answers_the_devices_sha256_challenge_once(
    client: httpx.AsyncClient, locked: ShellyGen2Emulator
) -> None:
    relay = driver(client, locked, channel=1, password=PASSWORD)
    assert await relay.switch(True) is True
    assert await relay.is_on() is True
    assert await relay.measure() == Measurement(power_w=Decimal(0), energy_wh=0)

    first, *others = locked.requests
    assert "authorization" not in first.headers  # challenged once, with a 401 ...
    fields = digest_fields(others[0].headers["authorization"])
    assert fields["username"] == "admin"
    assert fields["realm"] == locked.device_id
    assert fields["algorithm"] == "SHA-256"
    assert fields["qop"] == "auth"
    assert fields["uri"] == "/rpc"
    # ... and then the nonce is reused with a growing nonce count: no 401 per request.
    assert len(others) == 4
    assert all("authorization" in r.headers for r in others)
    counts = [int(digest_fields(r.headers["authorization"])["nc"], 16) for r in others]
    assert counts == [1, 2, 3, 4]


async def test_channels_of_one_device_share_its_client_concurrently(
    client: httpx.AsyncClient, locked: ShellyGen2Emulator
) -> None:
    relays = [driver(client, locked, channel=c, password=PASSWORD) for c in (0, 1)]
    results = await asyncio.gather(
        *(relay.switch(on) for relay in relays for on in (True, False, True))
    )
    assert results == [True, False, True] * 2
    assert [locked.output(0), locked.output(1)] == [True, True]


async def test_a_device_with_a_password_and_none_configured_says_so(
    client: httpx.AsyncClient, locked: ShellyGen2Emulator
) -> None:
    relay = driver(client, locked)
    with pytest.raises(DeviceUnreachable, match="none is configured") as raised:
        await relay.switch(True)
    assert raised.value.reason.startswith("authentication required (HTTP 401)")
    assert locked.output(0) is False


async def test_a_password_changed_on_the_device_is_refused(
    client: httpx.AsyncClient, locked: ShellyGen2Emulator
) -> None:
    relay = driver(client, locked, password=PASSWORD)
    assert await relay.is_on() is False
    locked.bad_password = True
    with pytest.raises(DeviceUnreachable, match=r"authentication refused \(HTTP 401\)"):
        await relay.is_on()


async def test_a_channel_the_device_does_not_have_is_named_by_its_rpc_error(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    relay = driver(client, device, channel=4)
    with pytest.raises(DeviceUnreachable) as raised:
        await relay.switch(True)
    assert raised.value.reason == (
        "HTTP 400 for /rpc: RPC error -105: Argument 'id', value 4 not found!"
    )


async def test_an_answer_that_is_not_json_is_malformed(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    device.malformed = True
    with pytest.raises(DeviceUnreachable, match="malformed answer, not JSON"):
        await driver(client, device).is_on()


async def test_a_channel_without_metering_is_a_fault_when_measured_not_when_switched(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen2Emulator(clock=clock, metering=False) as plain:
        relay = driver(client, plain)
        assert await relay.switch(True) is True
        with pytest.raises(DeviceUnreachable, match=r"no 'apower' in Switch\.GetStatus"):
            await relay.measure()
        with pytest.raises(DeviceUnreachable, match=r"no 'aenergy' in Switch\.GetStatus"):
            await relay.energy_wh()


async def test_the_reasons_for_silence_and_absence_differ(
    client: httpx.AsyncClient, device: ShellyGen2Emulator
) -> None:
    relay = driver(client, device, timeout_s=0.25)
    device.unreachable = True
    with pytest.raises(DeviceUnreachable) as silent:
        await relay.is_on()
    assert silent.value.reason == "no answer within 0.25 s"
    assert str(silent.value) == f"shelly-gen2 127.0.0.1:{device.port}/0: no answer within 0.25 s"

    await device.stop()
    with pytest.raises(DeviceUnreachable) as gone:
        await relay.is_on()
    assert gone.value.reason.startswith("connection failed")


async def test_a_relay_block_that_names_no_channel_is_refused(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match=r"port 0 is outside 1\.\.65535; channel -1 is negative"):
        ShellyGen2(client, host="10.0.4.21", port=0, channel=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        ShellyGen2(client, host="10.0.4.21", timeout_s=0)
    assert ShellyGen2(client, host="fd00::21", channel=3).address == "shelly-gen2 [fd00::21]:80/3"
