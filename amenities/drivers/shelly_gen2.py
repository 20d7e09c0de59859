"""One switch channel of a Shelly Gen2, Gen3 or Gen4 device (Plus/Pro 1PM, Pro 4PM, Plug S, ...)
over its HTTP RPC: `Switch.Set` and `Switch.GetStatus` as JSON-RPC frames on `POST /rpc`.

Relay block (devices.md): `{driver: shelly-gen2, host, port: 80, channel: 0, password: none,
inverted: false}`; the user is always `admin`, and a password means HTTP digest auth with
SHA-256 (RFC 7616, realm = the device id), which `httpx.DigestAuth` answers from the device's
challenge and then reuses (firmware 2.0 accepts a nonce again with a higher `nc`).

Every switch is read back with `Switch.GetStatus`: `Switch.Set` answers only `was_on`, the state
before, and the state that counts is the one the device reports after.
"""

from __future__ import annotations

import itertools
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx

from amenities.drivers.capabilities import DeviceUnreachable, Measurement, check_auto_off
from amenities.drivers.shelly_http import (
    DEFAULT_TIMEOUT_S,
    check_endpoint,
    device_url,
    exchange_json,
    field_of,
    flag_of,
    host_port,
    number_of,
    rpc_error,
    shelly_client,
)

__all__ = ["ShellyGen2", "shelly_client"]

GEN2_USER = "admin"  # fixed by the firmware: Shelly.SetAuth only takes "admin"


class ShellyGen2:
    """`Relay` and `Metering` for channel `channel` (`Switch` component id) of one device.

    `client` is the device's own client (`shelly_client()`), shared by all its channels.
    `inverted` serves normally-closed wiring: `on` for us (the machine has power) is the
    device's output off. `auto_off_s` becomes `toggle_after`, the device's flip-back timer, so
    a backend that stops renewing it (crashed, cut off) cannot leave a machine running."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        host: str,
        port: int = 80,
        channel: int = 0,
        password: str | None = None,
        inverted: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        check_endpoint(host, port, channel, timeout_s)
        self._client = client
        self._channel = channel
        self._inverted = inverted
        self._timeout_s = timeout_s
        # One DigestAuth per driver keeps the device's last challenge, so a channel pays the
        # 401 round trip once, not on every request.
        self._auth = httpx.DigestAuth(GEN2_USER, password) if password else None
        self._url = device_url(host, port, "/rpc")
        self._address = f"shelly-gen2 {host_port(host, port)}/{channel}"
        self._frame_ids = itertools.count(1)

    @property
    def address(self) -> str:
        return self._address

    async def switch(self, on: bool, *, auto_off_s: int | None = None) -> bool:
        """`Switch.Set`, then the state read back. A dead-man timer is only armed when
        switching on: `toggle_after` flips whatever was set, so with off it would switch the
        machine on later. A `Switch.Set` without it clears a running timer (as the device
        does), so switching off also disarms the dead man."""
        check_auto_off(auto_off_s)
        params: dict[str, Any] = {"id": self._channel, "on": on != self._inverted}
        if on and auto_off_s is not None:
            params["toggle_after"] = auto_off_s
        await self._call("Switch.Set", params)
        return self._ours(await self._status())

    async def is_on(self) -> bool:
        return self._ours(await self._status())

    async def power_w(self) -> Decimal:
        return self._power(await self._status())

    async def energy_wh(self) -> int:
        return self._energy(await self._status())

    async def measure(self) -> Measurement:
        status = await self._status()
        return Measurement(power_w=self._power(status), energy_wh=self._energy(status))

    def _ours(self, status: Any) -> bool:
        return flag_of(status, "output", self._address, "Switch.GetStatus") != self._inverted

    def _power(self, status: Any) -> Decimal:
        power = number_of(status, "apower", self._address, "Switch.GetStatus")
        # A PM channel reads a few tenths of a watt below zero at no load (measurement
        # noise); a consumer never feeds power back, and a negative reading would make a
        # cycle's power profile dip below its end threshold for nothing.
        return max(power, Decimal(0))

    def _energy(self, status: Any) -> int:
        aenergy = field_of(status, "aenergy", self._address, "Switch.GetStatus")
        total = number_of(aenergy, "total", self._address, "Switch.GetStatus.aenergy")
        if total < 0:
            raise DeviceUnreachable(self._address, f"malformed answer: aenergy.total is {total}")
        return int(total.to_integral_value(rounding=ROUND_FLOOR))

    async def _status(self) -> Any:
        return await self._call("Switch.GetStatus", {"id": self._channel})

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC frame and its `result`; an `error` frame names the device's code."""
        frame_id = next(self._frame_ids)
        answer = await exchange_json(
            self._client,
            self._address,
            "POST",
            self._url,
            auth=self._auth,
            timeout_s=self._timeout_s,
            body={"id": frame_id, "method": method, "params": params},
        )
        if not isinstance(answer, dict):
            raise DeviceUnreachable(self._address, f"malformed answer to {method}: not an object")
        refused = rpc_error(answer)
        if refused is not None:
            raise DeviceUnreachable(self._address, f"{method} refused: {refused}")
        if answer.get("id") != frame_id:
            raise DeviceUnreachable(
                self._address,
                f"malformed answer to {method}: frame id {answer.get('id')!r}, sent {frame_id}",
            )
        return field_of(answer, "result", self._address, f"the answer to {method}")
