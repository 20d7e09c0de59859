"""A Modbus coil relay under test, on a real pymodbus server, for the relay tests and the shared
relay conformance test (tests/amenities/test_relay_conformance.py, whose factories live in
tests/amenities/conftest.py).

    async with modbus_coil_relay(inverted=True) as subject:
        assert await subject.relay.switch(True) is True
        assert await subject.output_on() is True      # as the device holds it
        subject.make_unreachable()                     # the module leaves the line
        await subject.make_stuck()                     # the coil stays where it is

`subject.another_relay(inverted=..., timeout_s=...)` is a further driver on the same coil, on a
gateway of its own (closed with the subject): the conformance rigs hand out one per test call.
The `modbus_coil_relay_subject` fixture yields the default wiring.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from amenities.drivers.modbus_coil import ModbusCoilRelay
from amenities.drivers.modbus_gateway import Backoff, ModbusGateway, Transport
from csms.simulator.modbus_devices import EmulatedUnit, ModbusDevices

#: Short enough that a test of an unreachable relay stays quick, long enough for a loaded CI.
TEST_TIMEOUT_S = 0.5


class FakeClock:
    """A clock that moves only when told (for backoff and poll cycles)."""

    def __init__(self, start: datetime = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class ModbusRelaySubject:
    """A `ModbusCoilRelay` and the emulated relay module it switches."""

    relay: ModbusCoilRelay
    gateway: ModbusGateway
    devices: ModbusDevices
    unit: EmulatedUnit
    coil: int
    inverted: bool
    clock: FakeClock
    others: list[ModbusGateway] = field(default_factory=list)

    def another_relay(
        self, *, inverted: bool = False, timeout_s: float = TEST_TIMEOUT_S
    ) -> ModbusCoilRelay:
        """A further driver of the same coil through a gateway of its own (its own connection,
        timeout and backoff), closed when the subject's context ends."""
        gateway = ModbusGateway(
            self.devices.host,
            self.devices.port,
            self.gateway.transport,
            timeout_s=timeout_s,
            clock=self.clock,
        )
        self.others.append(gateway)
        return ModbusCoilRelay(gateway, unit=self.unit.id, coil=self.coil, inverted=inverted)

    async def coil_level(self) -> bool:
        """The coil as the module holds it (the level on the wire, before `inverted`)."""
        return (await self.devices.coils(self.unit.id, self.coil, 1))[0]

    async def output_on(self) -> bool:
        """Whether the machine has power, as the module's coil says."""
        return await self.coil_level() != self.inverted

    async def set_output(self, on: bool) -> None:
        """Switch the output at the device (a button on the module, another master)."""
        await self.devices.set_coil(self.unit.id, self.coil, on != self.inverted)

    def make_unreachable(self) -> None:
        self.unit.silent = True

    def make_reachable(self) -> None:
        self.unit.silent = False
        self.clock.advance(Backoff().max_s)  # past any backoff earned meanwhile

    async def make_stuck(self) -> None:
        """Writes are acknowledged, the coil keeps its present level."""
        self.unit.stuck[self.coil] = await self.coil_level()

    def make_unstuck(self) -> None:
        self.unit.stuck.pop(self.coil, None)


@asynccontextmanager
async def modbus_coil_relay(
    *,
    inverted: bool = False,
    transport: Transport = "tcp",
    unit: int = 1,
    coil: int = 2,
    coils: int = 4,
) -> AsyncIterator[ModbusRelaySubject]:
    """A relay module of `coils` coils as unit `unit` behind its own emulated gateway, and a
    `ModbusCoilRelay` on coil `coil` of it."""
    emulated = EmulatedUnit(unit, coils=coils)
    clock = FakeClock()
    async with ModbusDevices(emulated, transport=transport) as devices:
        gateway = ModbusGateway(
            devices.host, devices.port, transport, timeout_s=TEST_TIMEOUT_S, clock=clock
        )
        subject = ModbusRelaySubject(
            ModbusCoilRelay(gateway, unit=unit, coil=coil, inverted=inverted),
            gateway, devices, emulated, coil, inverted, clock,
        )
        try:
            yield subject
        finally:
            for each in (gateway, *subject.others):
                await each.close()


@pytest.fixture
async def modbus_coil_relay_subject() -> AsyncIterator[ModbusRelaySubject]:
    async with modbus_coil_relay() as subject:
        yield subject
