"""What both bus implementations share: claims bookkeeping, the refresher, request serving.

A backend supplies only transport: how an event, a claim or a request reaches other nodes.
Keeping the rules here is what lets one test suite hold both implementations to the same
behaviour.
"""

from __future__ import annotations

import asyncio
import collections
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import structlog

from csms.bus.errors import BusClosed, RemoteError, RequestTimeout, StationNotConnected
from csms.bus.interface import (
    Event,
    JsonObject,
    RequestHandler,
    StationLostCallback,
    check_name,
    check_topic,
    decode_object,
    encode_object,
    split_pattern,
)

DEFAULT_CLAIM_TTL = 30.0

# Envelope kinds a serving node answers with; they map one-to-one onto the typed errors.
OK = "ok"
NOT_CONNECTED = "not_connected"
TIMEOUT = "timeout"
FAILED = "failed"


class EventQueue:
    """One subscriber's events; bounded so a stalled web page cannot grow memory without end."""

    def __init__(self, pattern: str, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._pattern = pattern
        self._events: collections.deque[Event] = collections.deque()
        self._max_pending = max_pending
        self._ready = asyncio.Event()
        self._closed = False
        self._dropped = 0

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, event: Event) -> None:
        if self._closed:
            return
        if len(self._events) >= self._max_pending:
            # Live pages want the newest state; the oldest event is the cheapest loss.
            self._events.popleft()
            self._dropped += 1
        self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._events:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()


def pattern_matches(text: str, is_prefix: bool, topic: str) -> bool:
    return topic.startswith(text) if is_prefix else topic == text


class BusNode(ABC):
    """Base of `LocalBus` and `RedisBus`; see `csms.bus.interface.Bus` for the contract."""

    def __init__(self, *, node_id: str, namespace: str, claim_ttl: float) -> None:
        check_name("node id", node_id)
        check_name("namespace", namespace)
        if not (math.isfinite(claim_ttl) and claim_ttl > 0):
            raise ValueError(f"claim_ttl must be a positive number of seconds, got {claim_ttl!r}")
        self._node_id = node_id
        self._namespace = namespace
        self._claim_ttl = float(claim_ttl)
        self._held: set[str] = set()
        self._handler: RequestHandler | None = None
        self._lost_callbacks: list[StationLostCallback] = []
        self._subscriptions: set[EventQueue] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None
        # Claim, release and refresh must not interleave, or a refresh could revive a claim
        # that a release just removed.
        self._registry_lock = asyncio.Lock()
        self._running = False
        self._log = structlog.get_logger("csms.bus").bind(node_id=node_id, namespace=namespace)

    # lifecycle

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def claim_ttl(self) -> float:
        return self._claim_ttl

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        if self._running:
            return
        await self._open()
        self._running = True
        self._refresher = asyncio.create_task(
            self._refresh_loop(), name=f"bus-refresh-{self._node_id}"
        )
        self._log.info("bus.started", backend=type(self).__name__, claim_ttl=self._claim_ttl)

    async def stop(self, *, release: bool = True) -> None:
        if not self._running:
            return
        self._running = False
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if release:
            async with self._registry_lock:
                for station_id in sorted(self._held):
                    try:
                        await self._release_claim(station_id)
                    except Exception:
                        self._log.warning(
                            "bus.release_failed", station_id=station_id, exc_info=True
                        )
        self._held.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for queue in list(self._subscriptions):
            queue.close()
        await self._close()
        self._log.info("bus.stopped", released=release)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require_running(self) -> None:
        if not self._running:
            raise BusClosed(f"bus node {self._node_id!r} is not running")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run work the bus owns, so that stop() can cancel and await it."""
        if not self._running:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # events

    async def publish(self, topic: str, data: Mapping[str, Any]) -> None:
        check_topic(topic)
        text = encode_object("event", data)
        self._require_running()
        await self._publish(topic, text)

    @asynccontextmanager
    async def subscribe(
        self, pattern: str, *, max_pending: int = 1000
    ) -> AsyncIterator[EventQueue]:
        text, is_prefix = split_pattern(pattern)
        self._require_running()
        queue = EventQueue(pattern, max_pending)
        self._subscriptions.add(queue)
        try:
            await self._add_subscription(queue, text, is_prefix)
            yield queue
        finally:
            queue.close()
            self._subscriptions.discard(queue)
            await self._remove_subscription(queue)

    # registry

    async def claim(self, station_id: str) -> str | None:
        check_name("station id", station_id)
        self._require_running()
        async with self._registry_lock:
            previous = await self._claim(station_id)
            self._held.add(station_id)
        if previous == self._node_id:
            previous = None
        self._log.info("bus.station_claimed", station_id=station_id, previous_node=previous)
        return previous

    async def hold_duty(self, name: str, ttl: float) -> bool:
        check_name("duty", name)
        self._require_running()
        return await self._hold_duty(name, ttl)

    async def release_duty(self, name: str) -> None:
        check_name("duty", name)
        if self._running:
            await self._release_duty(name)

    async def release(self, station_id: str) -> bool:
        self._require_running()
        async with self._registry_lock:
            self._held.discard(station_id)
            released = await self._release_claim(station_id)
        self._log.info("bus.station_released", station_id=station_id, was_owner=released)
        return released

    async def owner_of(self, station_id: str) -> str | None:
        self._require_running()
        return await self._owner(station_id)

    async def holds(self, station_id: str) -> bool:
        return await self.owner_of(station_id) == self._node_id

    def held_stations(self) -> frozenset[str]:
        return frozenset(self._held)

    def on_station_lost(self, callback: StationLostCallback) -> None:
        self._lost_callbacks.append(callback)

    def _notify_lost(self, station_id: str, new_owner: str | None) -> None:
        if station_id in self._held:
            self._spawn(self._handle_lost(station_id, new_owner), f"bus-lost-{station_id}")

    async def _handle_lost(self, station_id: str, new_owner: str | None) -> None:
        # A notice can be older than this node's own reclaim; the registry decides.
        async with self._registry_lock:
            if station_id not in self._held:
                return
            owner = await self._owner(station_id)
            if owner == self._node_id:
                return
            self._held.discard(station_id)
        new_owner = owner or new_owner
        self._log.warning("bus.station_lost", station_id=station_id, new_node=new_owner)
        for callback in list(self._lost_callbacks):
            try:
                await callback(station_id, new_owner)
            except Exception:
                self._log.exception("bus.lost_callback_failed", station_id=station_id)

    async def _refresh_loop(self) -> None:
        # Three chances per TTL, so one slow round trip does not drop a live node's claims.
        interval = self._claim_ttl / 3
        while True:
            await asyncio.sleep(interval)
            if not self._held:
                continue
            try:
                async with self._registry_lock:
                    lost = await self._refresh_claims(sorted(self._held))
            except Exception:
                self._log.warning("bus.refresh_failed", held=len(self._held), exc_info=True)
                continue
            for station_id in lost:
                self._notify_lost(station_id, None)

    # requests

    def set_request_handler(self, handler: RequestHandler | None) -> None:
        self._handler = handler

    async def request_station(
        self, station_id: str, payload: Mapping[str, Any], timeout: float
    ) -> JsonObject:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        text = encode_object("payload", payload)
        self._require_running()
        try:
            async with asyncio.timeout(timeout):
                envelope = await self._route_request(station_id, text, timeout)
        except TimeoutError as exc:
            if isinstance(exc, RequestTimeout):
                raise
            raise RequestTimeout(station_id, timeout) from None
        return self._unwrap(station_id, envelope, timeout)

    async def _serve(self, station_id: str, payload: JsonObject, timeout: float) -> JsonObject:
        """Answer a request on the node that should hold the station; never raises."""
        if station_id not in self._held:
            return {"kind": NOT_CONNECTED, "node": self._node_id}
        handler = self._handler
        if handler is None:
            return self._failure("NoRequestHandler", "node has no request handler")
        log = self._log.bind(station_id=station_id)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                result = await handler(station_id, payload)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
            # The copy keeps in-process replies as independent of the handler as remote ones.
            reply = decode_object(encode_object("reply", result))
        except StationNotConnected:
            return {"kind": NOT_CONNECTED, "node": self._node_id}
        except TimeoutError as exc:
            if deadline.expired():
                log.warning("bus.request_handler_timeout", timeout=timeout)
                return {"kind": TIMEOUT, "node": self._node_id}
            return self._failure(type(exc).__name__, str(exc))
        except Exception as exc:
            log.warning("bus.request_handler_failed", error_type=type(exc).__name__, exc_info=True)
            return self._failure(type(exc).__name__, str(exc))
        return {"kind": OK, "node": self._node_id, "result": reply}

    def _failure(self, error_type: str, message: str) -> JsonObject:
        return {"kind": FAILED, "node": self._node_id, "type": error_type, "message": message}

    def _unwrap(self, station_id: str, envelope: JsonObject, timeout: float) -> JsonObject:
        kind = envelope.get("kind")
        node = str(envelope.get("node", "?"))
        if kind == OK:
            result: JsonObject = envelope["result"]
            return result
        if kind == NOT_CONNECTED:
            raise StationNotConnected(station_id, f"node {node!r} no longer holds it")
        if kind == TIMEOUT:
            raise RequestTimeout(station_id, timeout)
        raise RemoteError(
            station_id,
            node,
            str(envelope.get("type", "UnknownError")),
            str(envelope.get("message", f"unexpected reply kind {kind!r}")),
        )

    # transport, supplied by each backend

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _publish(self, topic: str, text: str) -> None: ...

    @abstractmethod
    async def _add_subscription(self, queue: EventQueue, text: str, is_prefix: bool) -> None:
        """Return once events published from now on reach ``queue``."""

    @abstractmethod
    async def _remove_subscription(self, queue: EventQueue) -> None: ...

    @abstractmethod
    async def _claim(self, station_id: str) -> str | None:
        """Record this node as owner; return the previous owner and tell it of its loss."""

    @abstractmethod
    async def _release_claim(self, station_id: str) -> bool: ...

    @abstractmethod
    async def _owner(self, station_id: str) -> str | None: ...

    @abstractmethod
    async def _refresh_claims(self, station_ids: list[str]) -> list[str]:
        """Extend this node's claims; return the stations another node has taken meanwhile."""

    @abstractmethod
    async def _hold_duty(self, name: str, ttl: float) -> bool: ...

    @abstractmethod
    async def _release_duty(self, name: str) -> None: ...

    @abstractmethod
    async def _route_request(
        self, station_id: str, payload_text: str, timeout: float
    ) -> JsonObject:
        """Deliver to the owning node's `_serve` and return its envelope."""
