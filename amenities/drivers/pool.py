"""The drivers of a site's devices, built from their site-file blocks (devices.md): one
connection owner per device address, shared by every channel, machine or meter behind it.

Built once in the composition root; `close()` releases every connection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from amenities.drivers.capabilities import Metering, Relay
from amenities.drivers.modbus_coil import ModbusCoilRelay
from amenities.drivers.modbus_gateway import ModbusGateways
from amenities.drivers.shelly_gen1 import ShellyGen1
from amenities.drivers.shelly_gen2 import ShellyGen2
from amenities.drivers.shelly_http import shelly_client

# A meter of a `power` block (profile + modbus), built by the meters package: amenities never
# imports meters (meters sits above it), so the composition root hands this in.
MeterOf = Callable[[ModbusGateways, Mapping[str, Any]], Metering]


class UnknownDriver(ValueError):
    """A relay block names a driver this build does not have."""


class DriverPool:
    def __init__(
        self,
        *,
        meter_of: MeterOf | None = None,
        timeout_s: float = 3.0,
        gateways: ModbusGateways | None = None,
    ) -> None:
        self._meter_of = meter_of
        self._timeout_s = timeout_s
        self._http: dict[tuple[str, int], httpx.AsyncClient] = {}
        self.gateways = gateways or ModbusGateways(timeout_s=min(timeout_s, 2.0))

    def _client(self, host: str, port: int) -> httpx.AsyncClient:
        client = self._http.get((host, port))
        if client is None:
            client = shelly_client(timeout_s=self._timeout_s)
            self._http[(host, port)] = client
        return client

    def relay(self, block: Mapping[str, Any]) -> Relay:
        """The driver of a relay block (`amenities[].relay`, `meters[].disconnect`)."""
        driver = block.get("driver")
        host = str(block["host"])
        channel = int(block.get("channel", 0))
        inverted = bool(block.get("inverted", False))
        port = int(block.get("port", 80))
        if driver == "shelly-gen2":
            return ShellyGen2(self._client(host, port), host=host, port=port, channel=channel,
                              password=block.get("password"), inverted=inverted,
                              timeout_s=self._timeout_s)
        if driver == "shelly-gen1":
            return ShellyGen1(self._client(host, port), host=host, port=port, channel=channel,
                              username=block.get("username"), password=block.get("password"),
                              inverted=inverted, timeout_s=self._timeout_s)
        if driver == "modbus-coil":
            gateway = self.gateways.gateway(host, int(block.get("port", 502)),
                                            block.get("transport", "tcp"))
            return ModbusCoilRelay(gateway, unit=int(block.get("unit", 1)),
                                   coil=int(block.get("coil", 0)), inverted=inverted)
        raise UnknownDriver(f"driver: {driver!r} is not a relay driver of this build")

    def meter(self, block: Mapping[str, Any]) -> Metering:
        """A meter of a `power` block (profile and modbus keys)."""
        if self._meter_of is None:
            raise UnknownDriver("power: no meter drivers were given to this pool")
        return self._meter_of(self.gateways, block)

    async def close(self) -> None:
        for client in self._http.values():
            await client.aclose()
        self._http.clear()
        await self.gateways.close()
