"""A relay output of a Modbus relay module (`driver: modbus-coil` in devices.md).

Switching writes the single coil (function 05) and reads it back (function 01) in one turn of
the gateway's line: the state read back is what `switch` returns, so a coil that acknowledged
the write but did not move (a module that ignores writes, a wrong coil number) shows as a
read-back different from the wanted state.

Modbus relay modules have no dead-man timer: `auto_off_s` is ignored, and the backend must
switch the output off itself (and reconcile it) when a cycle ends or credit runs out.
"""

from __future__ import annotations

from amenities.drivers.capabilities import DeviceUnreachable, check_auto_off
from amenities.drivers.modbus_gateway import ModbusGateway


class ModbusCoilRelay:
    """`Relay` on coil `coil` of unit `unit` behind `gateway`. `inverted` serves normally
    closed wiring: the machine has power while the coil is off."""

    def __init__(
        self, gateway: ModbusGateway, *, unit: int = 1, coil: int = 0, inverted: bool = False
    ) -> None:
        self._gateway = gateway
        self._unit = unit
        self._coil = coil
        self._inverted = inverted

    @property
    def address(self) -> str:
        """`modbus-coil tcp 10.0.4.31:502 unit 1 coil 0`"""
        gateway = self._gateway
        return (
            f"modbus-coil {gateway.transport} {gateway.host}:{gateway.port} "
            f"unit {self._unit} coil {self._coil}"
        )

    async def switch(self, on: bool, *, auto_off_s: int | None = None) -> bool:
        """Write the coil, then read it back; returns the state read back. `auto_off_s` is
        ignored (no timer in the device, see the module note), but must be positive."""
        check_auto_off(auto_off_s)
        try:
            level = await self._gateway.write_coil_read_back(
                self._unit, self._coil, on != self._inverted
            )
        except DeviceUnreachable as error:
            raise DeviceUnreachable(self.address, error.reason) from error
        return level != self._inverted

    async def is_on(self) -> bool:
        try:
            bits = await self._gateway.read_coils(self._unit, self._coil, 1)
        except DeviceUnreachable as error:
            raise DeviceUnreachable(self.address, error.reason) from error
        return bits[0] != self._inverted
