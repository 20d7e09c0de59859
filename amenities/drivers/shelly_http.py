"""The HTTP exchange both Shelly drivers make: one client per device, and the one place where a
failed exchange becomes `DeviceUnreachable` with a reason staff can act on.

One client per device address, shared by every channel of that device: a Shelly serves only a
few sockets at a time (an ESP8266 Gen1 a handful, an ESP32 Gen2 a few more), so the pool holds
one connection and the channels of a Pro 4PM take turns on it instead of opening four. The
composition root builds it with `shelly_client()` once per `(host, port)` and closes it
(`await client.aclose()`) at shutdown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from amenities.drivers.capabilities import DeviceUnreachable

DEFAULT_TIMEOUT_S = 3.0
# A small device drops idle connections without notice (socket limits, Wi-Fi reconnects);
# reusing one it already dropped costs a failed request, so the client lets go of it early.
_KEEPALIVE_EXPIRY_S = 4.0
_SNIPPET = 120  # how much of an unexpected answer a reason quotes


def shelly_client(*, timeout_s: float = DEFAULT_TIMEOUT_S) -> httpx.AsyncClient:
    """The client of one Shelly device (all its channels); the drivers pass their own timeout
    on every request, this one only applies to requests made outside them."""
    return httpx.AsyncClient(
        timeout=timeout_s,
        limits=httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=_KEEPALIVE_EXPIRY_S
        ),
        # A device on the site's LAN is never reached through the proxy the environment names.
        trust_env=False,
        follow_redirects=False,
    )


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 literal in brackets (`[fd00::21]:80`)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def device_url(host: str, port: int, path: str) -> str:
    return f"http://{host_port(host, port)}{path}"


def check_endpoint(host: str, port: int, channel: int, timeout_s: float) -> None:
    """Refuse a relay block that cannot name a device channel (installer input, caught early)."""
    problems = []
    if not host or host.strip() != host:
        problems.append(f"host {host!r} is empty or padded")
    if not 0 < port < 65536:
        problems.append(f"port {port} is outside 1..65535")
    if channel < 0:
        problems.append(f"channel {channel} is negative")
    if not timeout_s > 0:
        problems.append(f"timeout_s {timeout_s} is not positive")
    if problems:
        raise ValueError("; ".join(problems))


async def exchange_json(
    client: httpx.AsyncClient,
    address: str,
    method: str,
    url: str,
    *,
    auth: httpx.Auth | None,
    timeout_s: float,
    params: Mapping[str, str] | None = None,
    body: Any = None,
) -> Any:
    """One request to the device and its JSON answer, or `DeviceUnreachable` saying what failed.

    `auth` is None when no credentials are configured; it only changes the reason given for a
    401 (a password is missing, or the configured one is refused)."""
    try:
        response = await client.request(
            method,
            url,
            params=params,
            content=None if body is None else json.dumps(body, separators=(",", ":")),
            headers=None if body is None else {"Content-Type": "application/json"},
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            timeout=timeout_s,
        )
    except httpx.ConnectTimeout:
        raise DeviceUnreachable(address, f"no connection within {timeout_s:g} s") from None
    except httpx.PoolTimeout:
        raise DeviceUnreachable(
            address, f"its connection stayed busy with another request for {timeout_s:g} s"
        ) from None
    except httpx.TimeoutException:
        raise DeviceUnreachable(address, f"no answer within {timeout_s:g} s") from None
    except httpx.ConnectError as exc:
        raise DeviceUnreachable(address, f"connection failed: {str(exc) or 'refused'}") from None
    except httpx.RemoteProtocolError as exc:
        raise DeviceUnreachable(address, f"the device broke off the exchange: {exc}") from None
    except httpx.HTTPError as exc:
        raise DeviceUnreachable(address, f"{type(exc).__name__}: {exc}") from None
    if response.status_code == 401:
        if auth is None:
            raise DeviceUnreachable(
                address,
                "authentication required (HTTP 401): the device has a password, none is configured",
            )
        raise DeviceUnreachable(
            address, "authentication refused (HTTP 401): wrong username or password"
        )
    if not response.is_success:
        raise DeviceUnreachable(
            address,
            f"HTTP {response.status_code} for {response.request.url.path}: "
            f"{_refusal(response)}",
        )
    try:
        return json.loads(response.content)
    except ValueError:
        raise DeviceUnreachable(
            address, f"malformed answer, not JSON: {response.text[:_SNIPPET]!r}"
        ) from None


def field_of(answer: Any, key: str, address: str, where: str) -> Any:
    """`answer[key]`, or `DeviceUnreachable` naming what is missing (firmware that does not
    meter, a reshaped answer): never a KeyError that a caller would not expect."""
    if not isinstance(answer, dict) or key not in answer:
        raise DeviceUnreachable(address, f"malformed answer: no {key!r} in {where}")
    return answer[key]


def flag_of(answer: Any, key: str, address: str, where: str) -> bool:
    value = field_of(answer, key, address, where)
    if not isinstance(value, bool):
        raise DeviceUnreachable(
            address, f"malformed answer: {where}.{key} is {value!r}, not a boolean"
        )
    return value


def number_of(answer: Any, key: str, address: str, where: str) -> Decimal:
    """A finite number from the answer, exactly as the device wrote it (`Decimal(str(...))`:
    1234.567 Wh stays 1234.567, not a binary neighbour that floors one Wh lower)."""
    value = field_of(answer, key, address, where)
    # bool is an int to Python, but `true` is no reading.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DeviceUnreachable(
            address, f"malformed answer: {where}.{key} is {value!r}, not a number"
        )
    number = Decimal(str(value))
    if not number.is_finite():
        raise DeviceUnreachable(address, f"malformed answer: {where}.{key} is {value!r}")
    return number


def rpc_error(answer: Any) -> str | None:
    """`RPC error <code>: <message>` from a Gen2 error, framed (`{"error": {...}}`, the answer to
    `POST /rpc`) or bare (`{"code", "message"}`, the answer to `GET /rpc/<Method>`)."""
    if not isinstance(answer, dict):
        return None
    error = answer.get("error", answer if "code" in answer else None)
    if error is None:
        return None
    if not isinstance(error, dict):
        return f"RPC error: {error!r}"
    return f"RPC error {error.get('code')}: {error.get('message')}"


def _refusal(response: httpx.Response) -> str:
    """What a device said when it refused a request: its RPC error if it gave one (Gen2 answers
    a refused call with 400 and the error frame), else the start of the body (Gen1's
    `Not Found`, `Bad turn!`)."""
    try:
        detail = rpc_error(json.loads(response.content))
    except ValueError:
        detail = None
    return detail or repr(response.text[:_SNIPPET])
