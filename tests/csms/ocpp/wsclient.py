"""A bare websocket client for wire-level tests (exact JSON in, exact JSON out)."""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


def basic(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_raw(
    url: str,
    station_id: str,
    *,
    protocols: list[str] | None = None,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> ClientConnection:
    headers = basic(station_id, password) if password is not None else {}
    return await connect(
        f"{url}/{station_id}",
        subprotocols=protocols if protocols is not None else ["ocpp1.6"],  # type: ignore[arg-type]
        additional_headers=headers,
        ssl=ssl_context,
        open_timeout=10,
        **kwargs,
    )


async def exchange(ws: ClientConnection, frame: Any) -> Any:
    """Send a frame (str as is, anything else as JSON) and return the decoded answer."""
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return await answer(ws)


async def answer(ws: ClientConnection) -> Any:
    """The next CALLRESULT or CALLERROR; the server's own CALLs (after a boot) are skipped."""
    while True:
        message = json.loads(await ws.recv())
        if not (isinstance(message, list) and message and message[0] == 2):
            return message


BOOT16 = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT201 = {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}
