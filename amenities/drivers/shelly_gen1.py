"""One relay channel of a Shelly Gen1 device (Shelly 1PM, 2.5, Plug S, ...) over its HTTP API:
`GET /relay/<channel>?turn=on|off[&timer=S]` and `GET /status`.

Relay block (devices.md): `{driver: shelly-gen1, host, port: 80, channel: 0, username: none,
password: none, inverted: false}`; HTTP basic auth when either is set (the device's login is
`admin` unless the installer chose another, so a password alone is sent as `admin`).

The answer to `/relay/<channel>` is the relay's state after the command (`ison`), which is the
read-back: one exchange per switch. Gen1 counts energy in watt-minutes (`meters[i].total`);
the driver hands out whole Wh, floored.
"""

from __future__ import annotations

from decimal import Decimal
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
    shelly_client,
)

__all__ = ["ShellyGen1", "shelly_client"]

GEN1_DEFAULT_USER = "admin"
_WATT_MINUTES_PER_WH = 60


class ShellyGen1:
    """`Relay` and `Metering` for relay `channel` of one Gen1 device.

    `client` is the device's own client (`shelly_client()`), shared by all its channels.
    `inverted` serves normally-closed wiring. `auto_off_s` becomes the `timer` parameter, the
    device's flip-back timer (the dead man the backend renews while a cycle runs)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        host: str,
        port: int = 80,
        channel: int = 0,
        username: str | None = None,
        password: str | None = None,
        inverted: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        check_endpoint(host, port, channel, timeout_s)
        self._client = client
        self._channel = channel
        self._inverted = inverted
        self._timeout_s = timeout_s
        self._auth = (
            httpx.BasicAuth(username or GEN1_DEFAULT_USER, password or "")
            if username is not None or password is not None
            else None
        )
        self._relay_url = device_url(host, port, f"/relay/{channel}")
        self._status_url = device_url(host, port, "/status")
        self._address = f"shelly-gen1 {host_port(host, port)}/{channel}"

    @property
    def address(self) -> str:
        return self._address

    async def switch(self, on: bool, *, auto_off_s: int | None = None) -> bool:
        """`/relay/<channel>?turn=...`; the answer's `ison` is the state read back. The timer
        is only armed when switching on: it flips whatever was set, so with off it would switch
        the machine on later; a command without it clears a running timer."""
        check_auto_off(auto_off_s)
        params = {"turn": "on" if on != self._inverted else "off"}
        if on and auto_off_s is not None:
            params["timer"] = str(auto_off_s)
        answer = await self._get(self._relay_url, params)
        return flag_of(answer, "ison", self._address, f"/relay/{self._channel}") != self._inverted

    async def is_on(self) -> bool:
        relay = self._entry(await self._get(self._status_url), "relays")
        return flag_of(relay, "ison", self._address, self._where("relays")) != self._inverted

    async def power_w(self) -> Decimal:
        return self._power(self._entry(await self._get(self._status_url), "meters"))

    async def energy_wh(self) -> int:
        return self._energy(self._entry(await self._get(self._status_url), "meters"))

    async def measure(self) -> Measurement:
        meter = self._entry(await self._get(self._status_url), "meters")
        return Measurement(power_w=self._power(meter), energy_wh=self._energy(meter))

    def _power(self, meter: Any) -> Decimal:
        # Never negative for a consumer; a Gen1 PM reads a little below zero at no load.
        return max(number_of(meter, "power", self._address, self._where("meters")), Decimal(0))

    def _energy(self, meter: Any) -> int:
        watt_minutes = number_of(meter, "total", self._address, self._where("meters"))
        if watt_minutes < 0:
            raise DeviceUnreachable(self._address, f"malformed answer: meters total {watt_minutes}")
        # Integer division floors a non-negative count exactly, however many digits it has.
        return int(watt_minutes // _WATT_MINUTES_PER_WH)

    def _entry(self, status: Any, key: str) -> Any:
        """`status[key][channel]`, the channel's relay or meter, or a fault naming what is
        missing (a device without metering has no `meters`; a 1PM has no relay 1)."""
        entries = field_of(status, key, self._address, "/status")
        if not isinstance(entries, list) or len(entries) <= self._channel:
            raise DeviceUnreachable(
                self._address, f"malformed answer: /status has no {key}[{self._channel}]"
            )
        return entries[self._channel]

    def _where(self, key: str) -> str:
        return f"/status {key}[{self._channel}]"

    async def _get(self, url: str, params: dict[str, str] | None = None) -> Any:
        return await exchange_json(
            self._client,
            self._address,
            "GET",
            url,
            auth=self._auth,
            timeout_s=self._timeout_s,
            params=params,
        )
