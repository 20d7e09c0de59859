"""The bus as the rest of Volthaus sees it: events, the station registry, station requests.

Topics are dot-separated names such as ``station.WB-A-01.status`` or ``account.a-01.wallet``.
A subscription pattern is either a whole topic or a prefix ending in ``*``
(``station.WB-A-01.*``, ``station.*``, ``*``); nothing else is special, so the same pattern
means the same thing in process and on Redis.

Events and request payloads must be JSON objects: both implementations encode them, so a
payload that works on one node works across nodes (money goes as strings, never Decimal).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

JsonObject = dict[str, Any]

RequestHandler = Callable[[str, JsonObject], Awaitable[JsonObject]]
"""``async def handler(station_id, payload) -> reply`` run on the node holding the station."""

StationLostCallback = Callable[[str, str | None], Awaitable[None]]
"""``async def lost(station_id, new_owner_node_id_or_None)`` when another node took a station."""

_GLOB_CHARS = frozenset("*?[]\\")


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    data: JsonObject


def check_name(kind: str, value: str) -> str:
    """Reject names that would turn into Redis glob syntax or break log lines."""
    if not value:
        raise ValueError(f"{kind} must not be empty")
    # The common case at C speed: Python counts every white space but " " as unprintable.
    if value.isprintable() and " " not in value and _GLOB_CHARS.isdisjoint(value):
        return value
    bad = sorted({ch for ch in value if ch in _GLOB_CHARS or ch.isspace() or not ch.isprintable()})
    if bad:
        raise ValueError(f"{kind} {value!r} contains characters not allowed: {''.join(bad)!r}")
    return value


def check_topic(topic: str) -> str:
    return check_name("topic", topic)


def split_pattern(pattern: str) -> tuple[str, bool]:
    """Return ``(text, is_prefix)`` for a subscription pattern, or raise ValueError."""
    if pattern == "*":
        return "", True
    if pattern.endswith("*"):
        return check_name("pattern prefix", pattern[:-1]), True
    return check_name("pattern", pattern), False


def encode_object(kind: str, value: Mapping[str, Any]) -> str:
    """JSON text for an event or payload; TypeError/ValueError if it is not a JSON object."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{kind} must be a mapping, got {type(value).__name__}")
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{kind} is not JSON-encodable: {exc}") from exc


def decode_object(text: str | bytes) -> JsonObject:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


@runtime_checkable
class Subscription(Protocol):
    """Events matching one pattern, in the order they were published; ends when closed."""

    @property
    def pattern(self) -> str: ...

    @property
    def dropped(self) -> int:
        """Events discarded because this subscriber fell more than ``max_pending`` behind."""
        ...

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def __anext__(self) -> Event: ...


@runtime_checkable
class Bus(Protocol):
    """One node's view of the bus. Obtain one from `csms.bus.open_bus`."""

    @property
    def node_id(self) -> str: ...

    @property
    def claim_ttl(self) -> float:
        """Seconds a claim survives without refresh; a dead node's claims vanish after this."""
        ...

    async def start(self) -> None: ...

    async def stop(self, *, release: bool = True) -> None:
        """Stop background work; ``release=False`` leaves claims to expire, as a crash would."""
        ...

    # events

    async def publish(self, topic: str, data: Mapping[str, Any]) -> None:
        """Deliver to every current subscriber whose pattern matches, on any node."""
        ...

    def subscribe(
        self, pattern: str, *, max_pending: int = 1000
    ) -> AbstractAsyncContextManager[Subscription]:
        """``async with bus.subscribe("station.*") as events: async for event in events: ...``

        Entering returns only once the subscription is live: every event published after
        that is delivered (on Redis, joining a pattern another local subscriber already
        listens to may also yield an event that was in flight a moment before).
        """
        ...

    # registry of station connections

    async def claim(self, station_id: str) -> str | None:
        """Record that this node holds the station's websocket; the newest claim wins.

        Returns the node that held it before, if another one did (it is told it lost it).
        """
        ...

    async def release(self, station_id: str) -> bool:
        """Drop this node's claim; a claim another node took since then is left alone."""
        ...

    async def owner_of(self, station_id: str) -> str | None: ...

    async def holds(self, station_id: str) -> bool:
        """Ask the registry whether this node still holds the station (not just the local view)."""
        ...

    def held_stations(self) -> frozenset[str]:
        """Stations this node believes it holds (claimed, not released, not known lost)."""
        ...

    def on_station_lost(self, callback: StationLostCallback) -> None:
        """Run ``callback`` when another node's newer claim takes a station from this node."""
        ...

    # duties: work one node at a time does for the whole installation

    async def hold_duty(self, name: str, ttl: float) -> bool:
        """Take the lease `name`, or extend it when this node holds it, for `ttl` seconds;
        False while another node holds it. A node that stops renewing loses it after `ttl`."""
        ...

    async def release_duty(self, name: str) -> None:
        """Give the lease up now (a clean stop), unless another node holds it."""
        ...

    # requests to the node holding a station

    def set_request_handler(self, handler: RequestHandler | None) -> None: ...

    async def request_station(
        self, station_id: str, payload: Mapping[str, Any], timeout: float
    ) -> JsonObject:
        """Run the holding node's handler for ``station_id`` and return its reply.

        Raises StationNotConnected, RequestTimeout or RemoteError.
        """
        ...
