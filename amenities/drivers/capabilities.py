"""What the cycle controller and the supply control ask of a device, and nothing more
(evcc's lesson: the core depends on tiny capability interfaces, never on a concrete device).

A driver implements the capabilities its device has: a Shelly Plug or Pro 1PM switches and
measures (`Relay`, `PowerSensor`, `EnergyRegister`); a Modbus relay module only switches; a meter
only measures. Every call is one exchange with the device (or its gateway); a device that does
not answer, answers garbage or refuses the credentials raises `DeviceUnreachable`, which callers
record as a fault state, never as usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable


class DeviceUnreachable(Exception):
    """The device did not answer as its protocol says (timeout, refused, bad credentials,
    malformed answer). `address` names it for logs and staff (`shelly-gen2 10.0.4.21:80/0`)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Measurement:
    """Power and energy register of one channel, read in one exchange."""

    power_w: Decimal  # active power now, W (never negative for a consumer)
    energy_wh: int  # the device's energy register, whole Wh (floored), monotonic


@runtime_checkable
class Relay(Protocol):
    """A switched output. `on` means the machine (or flat) has power, whatever the wiring:
    a driver with `inverted: true` writes the opposite level."""

    @property
    def address(self) -> str: ...

    async def switch(self, on: bool, *, auto_off_s: int | None = None) -> bool:
        """Set the output and return the state read back afterwards (`on` as above).
        `auto_off_s`: the device switches itself off after this long unless switched again
        (a dead-man timer the backend renews while a cycle runs); drivers whose device has no
        timer ignore it."""
        ...

    async def is_on(self) -> bool:
        """The output state as the device reports it now."""
        ...


def check_auto_off(auto_off_s: int | None) -> None:
    """`Relay.switch`'s `auto_off_s` is a positive number of seconds or None, for every driver:
    one whose device has no timer ignores a good value but still refuses a bad one, so a caller's
    mistake shows the same whichever relay is wired."""
    if auto_off_s is not None and auto_off_s <= 0:
        raise ValueError(f"auto_off_s {auto_off_s} must be a positive number of seconds")


@runtime_checkable
class PowerSensor(Protocol):
    @property
    def address(self) -> str: ...

    async def power_w(self) -> Decimal: ...


@runtime_checkable
class EnergyRegister(Protocol):
    @property
    def address(self) -> str: ...

    async def energy_wh(self) -> int: ...


@runtime_checkable
class Metering(PowerSensor, EnergyRegister, Protocol):
    """Power and energy in one exchange (a Shelly's status, a meter's register block)."""

    async def measure(self) -> Measurement: ...
