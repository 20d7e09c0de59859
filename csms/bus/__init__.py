"""Message bus between Volthaus nodes: events, the station registry, station requests.

The composition root opens one bus per process from settings::

    async with open_bus(settings.redis_url, node_id=node_id) as bus:
        ...

``redis_url=None`` gives the in-process bus (a single node); a URL gives the Redis bus, on
which every node of a site shares ``namespace``. The bus reads no environment variables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from csms.bus.errors import (
    BusClosed,
    BusError,
    RemoteError,
    RequestTimeout,
    StationNotConnected,
)
from csms.bus.interface import (
    Bus,
    Event,
    JsonObject,
    RequestHandler,
    StationLostCallback,
    Subscription,
)
from csms.bus.local import LocalBus, LocalHub
from csms.bus.node import DEFAULT_CLAIM_TTL

__all__ = [
    "DEFAULT_CLAIM_TTL",
    "Bus",
    "BusClosed",
    "BusError",
    "Event",
    "JsonObject",
    "LocalBus",
    "LocalHub",
    "RemoteError",
    "RequestHandler",
    "RequestTimeout",
    "StationLostCallback",
    "StationNotConnected",
    "Subscription",
    "create_bus",
    "open_bus",
]


def create_bus(
    redis_url: str | None,
    *,
    node_id: str,
    namespace: str = "volthaus",
    claim_ttl: float = DEFAULT_CLAIM_TTL,
) -> Bus:
    """Build a bus that is not started yet; the caller owns `start()` and `stop()`."""
    if redis_url is None:
        return LocalBus(node_id=node_id, namespace=namespace, claim_ttl=claim_ttl)
    # Imported here so a single-node install never loads the Redis client.
    from csms.bus.redis import RedisBus

    return RedisBus(url=redis_url, node_id=node_id, namespace=namespace, claim_ttl=claim_ttl)


@asynccontextmanager
async def open_bus(
    redis_url: str | None,
    *,
    node_id: str,
    namespace: str = "volthaus",
    claim_ttl: float = DEFAULT_CLAIM_TTL,
) -> AsyncIterator[Bus]:
    """Start a bus for the block and stop it (releasing this node's claims) on the way out."""
    bus = create_bus(redis_url, node_id=node_id, namespace=namespace, claim_ttl=claim_ttl)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()
