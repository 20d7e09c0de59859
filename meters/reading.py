"""Reading a meter through whoever owns its Modbus line.

One physical connection serves every meter behind a gateway (evcc's and OpenEMS's lesson), so
this module never opens one: it takes a `ReadRegisters` callable, `(function, address, count)
-> words`, with the unit already bound by the caller, e.g.
`functools.partial(gateway.read_registers, unit)`. `read_meter` runs the profile's read plan
through it and decodes; `ModbusMeter` offers the same as the `Metering` capability that the
cycle controller and supply control use (meters sits above amenities in the package layers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from amenities.drivers.capabilities import DeviceUnreachable, Measurement
from meters.profiles import MeterProfile
from meters.registers import MalformedReading, MeterValues, Read, decode, read_plan

#: `(function, address, count) -> words`: function is "input" (04) or "holding" (03); the
#: answer is `count` 16-bit words. Raises whatever the line's owner raises when the exchange fails.
ReadRegisters = Callable[[str, int, int], Awaitable[Sequence[int]]]


async def read_meter(read: ReadRegisters, profile: MeterProfile) -> MeterValues:
    """One reading: every read of the profile's plan, in order, then decoded. Raises what
    `read` raises, or MalformedReading when an answer does not fit the request."""
    blocks: dict[Read, Sequence[int]] = {}
    for request in read_plan(profile):
        blocks[request] = list(await read(request.function, request.address, request.count))
    return decode(profile, blocks)


class ModbusMeter:
    """A meter as the `Metering` capability (amenities.drivers.capabilities): power and energy
    from one reading. Any failed exchange, garbled answer, or NaN in the energy or power
    register raises DeviceUnreachable, which callers record as a fault, never as usage."""

    def __init__(self, read: ReadRegisters, profile: MeterProfile, *, address: str) -> None:
        self._read = read
        self._profile = profile
        self._address = address

    @property
    def address(self) -> str:
        """How staff and logs name the meter (`eastron-sdm630 10.0.4.30:502/1`)."""
        return self._address

    @property
    def profile(self) -> MeterProfile:
        return self._profile

    async def read_values(self) -> MeterValues:
        """Everything the profile reads (voltages and currents too); NaN registers stay None."""
        try:
            return await read_meter(self._read, self._profile)
        except MalformedReading as error:
            raise DeviceUnreachable(self._address, f"malformed answer: {error}") from error
        except DeviceUnreachable:
            raise
        except Exception as error:
            # The line's owner has its own error types (timeouts, Modbus exception answers,
            # refused connections); to callers they all mean the same: no reading, a fault.
            raise DeviceUnreachable(self._address, f"{type(error).__name__}: {error}") from error

    async def measure(self) -> Measurement:
        values = await self.read_values()
        if values.energy_import_wh is None or values.power_w is None:
            missing = sorted(values.not_a_number & {"energy_import_wh", "power_w"})
            raise DeviceUnreachable(self._address, f"NaN or infinity in {', '.join(missing)}")
        return Measurement(power_w=values.power_w, energy_wh=values.energy_import_wh)

    async def power_w(self) -> Decimal:
        return (await self.measure()).power_w

    async def energy_wh(self) -> int:
        return (await self.measure()).energy_wh
