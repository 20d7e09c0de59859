"""The Shelly emulators answer as the published APIs say, checked with a plain HTTP client (not
the drivers, so a driver and its emulator cannot share a misreading unnoticed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from csms.simulator.httpdevice import ManualClock
from csms.simulator.loads import Programme
from csms.simulator.shelly import ShellyGen1Emulator, ShellyGen2Emulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


async def test_gen2_get_form_with_digest_auth_and_a_running_timer(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen2Emulator(channels=2, password="pw", clock=clock) as device:
        base = f"http://{device.host}:{device.port}/rpc"
        refused = await http.get(f"{base}/Switch.GetStatus?id=0")
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Digest ")
        assert f'realm="{device.device_id}"' in challenge and "algorithm=SHA-256" in challenge

        info = await http.get(f"{base}/Shelly.GetDeviceInfo")  # open without credentials
        assert info.status_code == 200
        assert info.json()["auth_en"] is True
        assert info.json()["auth_domain"] == device.device_id

        auth = httpx.DigestAuth("admin", "pw")
        set_answer = await http.get(f"{base}/Switch.Set?id=1&on=true&toggle_after=60", auth=auth)
        assert set_answer.json() == {"was_on": False}
        clock.advance(20)
        status = (await http.get(f"{base}/Switch.GetStatus?id=1", auth=auth)).json()
        assert status["output"] is True
        assert status["timer_duration"] == 60
        assert status["timer_started_at"] == pytest.approx(device.unix_time() - 20, abs=0.01)
        clock.advance(40)
        status = (await http.get(f"{base}/Switch.GetStatus?id=1", auth=auth)).json()
        assert status["output"] is False
        assert status["source"] == "timer"
        assert "timer_duration" not in status

        wrong = await http.get(f"{base}/Switch.GetStatus?id=1", auth=httpx.DigestAuth("admin", "x"))
        assert wrong.status_code == 401


async def test_gen2_post_frames_and_errors(http: httpx.AsyncClient, clock: ManualClock) -> None:
    async with ShellyGen2Emulator(clock=clock) as device:
        url = f"http://{device.host}:{device.port}/rpc"
        params = {"id": 0, "on": True}
        answer = await http.post(
            url, json={"id": 7, "src": "volthaus", "method": "Switch.Set", "params": params}
        )
        assert answer.json() == {
            "id": 7,
            "src": device.device_id,
            "dst": "volthaus",
            "result": {"was_on": False},
        }
        missing = await http.post(url, json={"id": 8, "method": "Switch.Set", "params": {"id": 0}})
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == -103
        unknown = await http.post(url, json={"id": 9, "method": "Switch.Explode"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["message"] == "No handler for Switch.Explode"


async def test_gen2_a_nonce_is_not_accepted_twice_with_the_same_count(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen2Emulator(password="pw", clock=clock) as device:
        url = f"http://{device.host}:{device.port}/rpc/Switch.GetStatus?id=0"
        assert (await http.get(url, auth=httpx.DigestAuth("admin", "pw"))).status_code == 200
        replayed = device.requests[-1].headers["authorization"]
        again = await http.get(url, headers={"Authorization": replayed})
        assert again.status_code == 401


async def test_gen2_a_welded_relay_acknowledges_and_stays(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen2Emulator(clock=clock) as device:
        base = f"http://{device.host}:{device.port}/rpc"
        device.set_stuck(0)
        assert (await http.get(f"{base}/Switch.Set?id=0&on=true")).json() == {"was_on": False}
        assert (await http.get(f"{base}/Switch.GetStatus?id=0")).json()["output"] is False


async def test_gen1_relay_timer_and_status(http: httpx.AsyncClient, clock: ManualClock) -> None:
    async with ShellyGen1Emulator(channels=2, clock=clock) as device:
        base = f"http://{device.host}:{device.port}"
        device.set_power(0, 1200)
        relay = (await http.get(f"{base}/relay/0?turn=on&timer=120")).json()
        assert relay["ison"] is True and relay["has_timer"] is True
        assert relay["timer_duration"] == 120 and relay["timer_remaining"] == 120
        clock.advance(90)
        status = (await http.get(f"{base}/status")).json()
        assert status["relays"][0]["timer_remaining"] == 30
        assert status["meters"][0]["power"] == 1200
        assert status["meters"][0]["total"] == 1200 * 90 // 60  # watt-minutes
        clock.advance(60)
        status = (await http.get(f"{base}/status")).json()
        assert status["relays"][0]["ison"] is False and status["relays"][0]["has_timer"] is False
        assert status["meters"][0]["total"] == 2400  # the 120 s until the timer fired
        assert status["meters"][0]["power"] == 0
        assert (await http.get(f"{base}/relay/0?turn=sideways")).status_code == 400


async def test_an_unreachable_device_reads_and_never_answers(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    async with ShellyGen1Emulator(clock=clock) as device:
        device.unreachable = True
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"http://{device.host}:{device.port}/status", timeout=0.2)
        assert device.requests == []  # read, never handled
        device.unreachable = False
        assert (await http.get(f"http://{device.host}:{device.port}/status")).status_code == 200
        await device.stop()
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://{device.host}:{device.port}/status")


async def test_a_programme_plays_from_each_switch_on_and_stops_with_the_timer(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    programme = Programme("test", ((10, 100.0), (20, 2000.0)), standby_w=1.0)
    async with ShellyGen2Emulator(channels=1, clock=clock) as device:
        base = f"http://{device.host}:{device.port}/rpc"
        device.set_programme(0, programme)

        async def status() -> tuple[float, float]:
            answer = (await http.get(f"{base}/Switch.GetStatus?id=0")).json()
            return answer["apower"], answer["aenergy"]["total"]

        clock.advance(100)
        assert await status() == (0, 0)  # off: the programme waits for the switch-on
        await http.get(f"{base}/Switch.Set?id=0&on=true&toggle_after=25")
        clock.advance(5)
        assert await status() == (100, round(500 / 3600, 3))
        clock.advance(10)
        await http.get(f"{base}/Switch.Set?id=0&on=true&toggle_after=25")  # renewed, not restarted
        clock.advance(5)
        assert await status() == (2000, round((1000 + 20_000) / 3600, 3))
        clock.advance(100)  # the timer (40 s after the switch-on) cut it
        assert await status() == (0, round((1000 + 2000 * 20 + 10) / 3600, 3))

        await http.get(f"{base}/Switch.Set?id=0&on=true")  # a new cycle
        clock.advance(40)
        assert await status() == (1, round((2 * (1000 + 40_000) + 10 + 10) / 3600, 3))
        device.set_programme(0, None)
        device.set_power(0, 50)
        clock.advance(36)
        assert (await status())[0] == 50
