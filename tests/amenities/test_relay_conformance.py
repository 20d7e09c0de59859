"""What every relay driver promises the cycle controller and the supply control (the `Relay`
capability, and `Metering` where the device measures), checked against each rig of
`conftest.RELAY_RIGS`: a real driver talking to an emulated device over 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal

import pytest

from amenities.drivers.capabilities import DeviceUnreachable, Measurement, Metering, Relay
from tests.amenities.conftest import RelayRig

# A wrong answer must come back as a fault, not a hang: the tests give the driver a short
# timeout and pytest-timeout a ceiling, nothing measures how long it took.
SHORT_TIMEOUT_S = 0.3


def metering(rig: RelayRig, relay: Relay) -> Metering:
    if rig.set_load_w is None:
        pytest.skip("this driver does not meter")
    assert isinstance(relay, Metering)
    return relay


async def test_the_driver_is_a_relay_and_names_its_device(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay()
    assert isinstance(relay, Relay)
    assert relay.address and relay.address == relay.address.strip()


async def test_switch_returns_the_state_read_back_and_is_on_agrees(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay()
    assert await relay.is_on() is False

    assert await relay.switch(True) is True
    assert await relay_rig.device_output() is True
    assert await relay.is_on() is True
    assert await relay.switch(True) is True  # again: still on, nothing toggles

    assert await relay.switch(False) is False
    assert await relay_rig.device_output() is False
    assert await relay.is_on() is False


async def test_inverted_wiring_means_on_is_the_output_off(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay(inverted=True)
    assert await relay.is_on() is True  # output off: a normally-closed contact feeds the machine

    assert await relay.switch(False) is False
    assert await relay_rig.device_output() is True
    assert await relay.is_on() is False

    assert await relay.switch(True) is True
    assert await relay_rig.device_output() is False
    assert await relay.is_on() is True


async def test_dead_man_switches_off_after_the_delay_unless_renewed(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay()
    assert await relay.switch(True, auto_off_s=60) is True
    relay_rig.advance(50)
    assert await relay.switch(True, auto_off_s=60) is True  # renewed: 60 s from now
    relay_rig.advance(50)
    assert await relay.is_on() is True
    relay_rig.advance(11)
    if not relay_rig.has_timer:
        # No timer on the device: auto_off_s is ignored, the output stays until switched off.
        assert await relay.is_on() is True
        assert await relay_rig.device_output() is True
        return
    assert await relay.is_on() is False
    assert await relay_rig.device_output() is False


async def test_dead_man_on_inverted_wiring_still_cuts_the_machine(relay_rig: RelayRig) -> None:
    if not relay_rig.has_timer:
        pytest.skip("the device has no timer")
    relay = relay_rig.relay(inverted=True)
    assert await relay.switch(True, auto_off_s=30) is True
    relay_rig.advance(31)
    assert await relay.is_on() is False
    assert await relay_rig.device_output() is True


async def test_switching_off_disarms_the_dead_man(relay_rig: RelayRig) -> None:
    # A timer left running would flip the output back: on for a machine that was switched off.
    for inverted in (False, True):
        relay = relay_rig.relay(inverted=inverted)
        assert await relay.switch(True, auto_off_s=30) is True
        assert await relay.switch(False, auto_off_s=30) is False
        relay_rig.advance(120)
        assert await relay.is_on() is False


async def test_auto_off_must_be_positive(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay()
    with pytest.raises(ValueError, match="auto_off_s"):
        await relay.switch(True, auto_off_s=0)
    assert await relay_rig.device_output() is False


async def test_power_and_energy_of_a_running_machine(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay()
    meter = metering(relay_rig, relay)
    assert relay_rig.set_load_w is not None
    relay_rig.set_load_w(Decimal(2000))
    assert await meter.measure() == Measurement(power_w=Decimal(0), energy_wh=0)  # off: no draw

    await relay.switch(True)
    relay_rig.advance(1800)  # half an hour at 2 kW
    assert await meter.measure() == Measurement(power_w=Decimal(2000), energy_wh=1000)
    assert await meter.power_w() == Decimal(2000)
    assert await meter.energy_wh() == 1000

    await relay.switch(False)
    relay_rig.advance(600)
    assert await meter.measure() == Measurement(power_w=Decimal(0), energy_wh=1000)


async def test_energy_is_whole_wh_floored_and_never_goes_back(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay()
    meter = metering(relay_rig, relay)
    assert relay_rig.set_load_w is not None
    relay_rig.set_load_w(Decimal(333))
    await relay.switch(True)
    readings: list[int] = []
    for step in range(1, 31):
        relay_rig.advance(7)
        energy = await meter.energy_wh()
        assert type(energy) is int
        drawn_wh = Decimal(333 * 7 * step) / 3600
        # Floored: never more than was drawn (a device rounding its register to 1 mWh may
        # show that last mWh), and less than one Wh short.
        assert drawn_wh - 1 < energy <= drawn_wh + Decimal("0.001")
        readings.append(energy)
    assert readings == sorted(readings)
    assert readings[0] == 0 and readings[-1] == 19  # 333 W for 210 s: 19.425 Wh


async def test_a_silent_device_is_unreachable_not_a_hang(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay(timeout_s=SHORT_TIMEOUT_S)
    relay_rig.go_silent()
    with pytest.raises(DeviceUnreachable) as raised:
        await relay.switch(True)
    assert raised.value.address == relay.address
    with pytest.raises(DeviceUnreachable):
        await relay.is_on()
    if relay_rig.set_load_w is not None:
        with pytest.raises(DeviceUnreachable):
            await metering(relay_rig, relay).measure()


async def test_a_device_gone_from_the_network_is_unreachable(relay_rig: RelayRig) -> None:
    relay = relay_rig.relay(timeout_s=SHORT_TIMEOUT_S)
    assert await relay.is_on() is False  # a connection to the device is open and pooled
    await relay_rig.go_away()
    with pytest.raises(DeviceUnreachable) as raised:
        await relay.switch(True)
    assert raised.value.address == relay.address
    with pytest.raises(DeviceUnreachable):
        await relay.is_on()


async def test_refused_credentials_are_an_auth_fault_and_switch_nothing(
    relay_rig: RelayRig,
) -> None:
    if not relay_rig.has_credentials:
        pytest.skip("the device checks no credentials")
    relay = relay_rig.relay(wrong_credentials=True)
    with pytest.raises(DeviceUnreachable, match="auth") as raised:
        await relay.switch(True)
    assert raised.value.address == relay.address
    assert "auth" in raised.value.reason
    assert await relay_rig.device_output() is False
    with pytest.raises(DeviceUnreachable, match="auth"):
        await relay.is_on()


async def test_a_welded_relay_reads_back_what_it_is_not_what_was_wanted(
    relay_rig: RelayRig,
) -> None:
    if relay_rig.set_stuck is None:
        pytest.skip("the emulator cannot weld this relay")
    relay = relay_rig.relay()
    assert await relay.switch(True) is True
    await relay_rig.set_stuck(True)
    assert await relay.switch(False) is True
    assert await relay.is_on() is True

    await relay_rig.set_stuck(False)
    assert await relay.switch(False) is False
    await relay_rig.set_stuck(True)
    assert await relay.switch(True) is False
    assert await relay.switch(True, auto_off_s=60) is False
