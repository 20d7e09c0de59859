"""Rigs for the relay conformance test: each is a driver factory and the emulated device behind
it, with the knobs the shared test turns.

Adding a driver to the conformance test is one entry in `RELAY_RIGS`: an async context manager
yielding a `RelayRig` (the Shelly rigs behind HTTP emulators, the Modbus coil rigs behind a
pymodbus gateway). A device without a timer, credentials or metering leaves the matching knob
at its default and the tests of that capability skip or check that it is ignored.

Looking at the device is awaitable for every rig (`device_output`, `set_stuck`): a Modbus
module's coils live in its server's datastore, read and set through the server's own async
calls, and a Shelly rig simply answers at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import pytest

from amenities.drivers.capabilities import Relay
from amenities.drivers.modbus_gateway import Transport
from amenities.drivers.shelly_gen1 import ShellyGen1
from amenities.drivers.shelly_gen2 import ShellyGen2, shelly_client
from csms.simulator.httpdevice import ManualClock
from csms.simulator.shelly import ShellyGen1Emulator, ShellyGen2Emulator
from tests.amenities.modbus_fixtures import modbus_coil_relay

# The channel (Shelly) or coil (Modbus) the rigs drive: not the first, so a driver that ignores
# its channel fails; likewise the Modbus unit is not the default 1.
RIG_CHANNEL = 1
RIG_UNIT = 3


class RelayFactory(Protocol):
    def __call__(
        self, *, inverted: bool = False, timeout_s: float = 3.0, wrong_credentials: bool = False
    ) -> Relay:
        """A driver for the rig's device; `wrong_credentials` gives it a refused password."""
        ...


@dataclass(kw_only=True)
class RelayRig:
    """A relay driver and the device behind it, as the conformance test sees them."""

    relay: RelayFactory
    device_output: Callable[[], Awaitable[bool]]  # the output level on the device (wiring-blind)
    advance: Callable[[float], None]  # move the device's clock by that many seconds
    go_silent: Callable[[], None]  # the device reads requests and never answers
    go_away: Callable[[], Awaitable[None]]  # the device's port closes: connections refused
    has_timer: bool = True  # the device has a flip-back timer for `auto_off_s`
    has_credentials: bool = False  # the device checks credentials the driver sends
    set_stuck: Callable[[bool], Awaitable[None]] | None = None  # weld it (None: not emulated)
    set_load_w: Callable[[Decimal], None] | None = None  # the load's draw (None: no metering)


@asynccontextmanager
async def shelly_gen2_rig(password: str | None = None) -> AsyncIterator[RelayRig]:
    clock = ManualClock()
    async with (
        ShellyGen2Emulator(channels=2, password=password, clock=clock) as device,
        shelly_client() as client,
    ):

        def relay(
            *, inverted: bool = False, timeout_s: float = 3.0, wrong_credentials: bool = False
        ) -> Relay:
            return ShellyGen2(
                client,
                host=device.host,
                port=device.port,
                channel=RIG_CHANNEL,
                password=f"not-{password}" if wrong_credentials else password,
                inverted=inverted,
                timeout_s=timeout_s,
            )

        yield _shelly_rig(device, clock, relay, has_credentials=password is not None)


@asynccontextmanager
async def shelly_gen1_rig(
    username: str | None = None, password: str | None = None
) -> AsyncIterator[RelayRig]:
    clock = ManualClock()
    async with (
        ShellyGen1Emulator(channels=2, username=username, password=password, clock=clock) as device,
        shelly_client() as client,
    ):

        def relay(
            *, inverted: bool = False, timeout_s: float = 3.0, wrong_credentials: bool = False
        ) -> Relay:
            return ShellyGen1(
                client,
                host=device.host,
                port=device.port,
                channel=RIG_CHANNEL,
                username=username,
                password=f"not-{password}" if wrong_credentials else password,
                inverted=inverted,
                timeout_s=timeout_s,
            )

        yield _shelly_rig(device, clock, relay, has_credentials=password is not None)


def _shelly_rig(
    device: ShellyGen2Emulator | ShellyGen1Emulator,
    clock: ManualClock,
    relay: RelayFactory,
    *,
    has_credentials: bool,
) -> RelayRig:
    def go_silent() -> None:
        device.unreachable = True

    async def device_output() -> bool:
        return device.output(RIG_CHANNEL)

    async def set_stuck(stuck: bool) -> None:
        device.set_stuck(RIG_CHANNEL, stuck)

    return RelayRig(
        relay=relay,
        device_output=device_output,
        advance=clock.advance,
        go_silent=go_silent,
        go_away=device.stop,
        has_credentials=has_credentials,
        set_stuck=set_stuck,
        set_load_w=lambda watts: device.set_power(RIG_CHANNEL, watts),
    )


@asynccontextmanager
async def modbus_coil_rig(transport: Transport) -> AsyncIterator[RelayRig]:
    """Coil `RIG_CHANNEL` of a 4-coil relay module, unit `RIG_UNIT` behind an emulated gateway.
    No timer, no metering, no credentials; `advance` moves the gateways' backoff clock."""
    async with modbus_coil_relay(
        transport=transport, unit=RIG_UNIT, coil=RIG_CHANNEL, coils=4
    ) as subject:

        def relay(
            *, inverted: bool = False, timeout_s: float = 3.0, wrong_credentials: bool = False
        ) -> Relay:
            # Modbus carries no credentials: `wrong_credentials` has nothing to spoil.
            return subject.another_relay(inverted=inverted, timeout_s=timeout_s)

        def go_silent() -> None:
            subject.make_unreachable()

        async def set_stuck(stuck: bool) -> None:
            if stuck:
                await subject.make_stuck()
            else:
                subject.make_unstuck()

        yield RelayRig(
            relay=relay,
            device_output=subject.coil_level,
            advance=subject.clock.advance,
            go_silent=go_silent,
            go_away=subject.devices.stop,
            has_timer=False,
            set_stuck=set_stuck,
        )


RELAY_RIGS: dict[str, Callable[[], AbstractAsyncContextManager[RelayRig]]] = {
    "shelly-gen2": shelly_gen2_rig,
    "shelly-gen2-password": lambda: shelly_gen2_rig(password="wash&dry-2026"),
    "shelly-gen1": shelly_gen1_rig,
    "shelly-gen1-basic-auth": lambda: shelly_gen1_rig(username="laundry", password="s3cret:ok"),
    "modbus-coil-tcp": lambda: modbus_coil_rig("tcp"),
    "modbus-coil-rtu-over-tcp": lambda: modbus_coil_rig("rtu-over-tcp"),
}


@pytest.fixture(params=sorted(RELAY_RIGS))
async def relay_rig(request: pytest.FixtureRequest) -> AsyncIterator[RelayRig]:
    async with RELAY_RIGS[request.param]() as rig:
        yield rig
