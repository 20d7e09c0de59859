"""In-process bus: the default for a single node, and the shape of a multi-node site in tests.

Nodes that share one `LocalHub` behave like nodes on one Redis namespace: events fan out to
all of them, the registry is shared, and a request reaches the node that holds the station.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from csms.bus.errors import BusError, StationNotConnected
from csms.bus.interface import Event, JsonObject, decode_object
from csms.bus.node import DEFAULT_CLAIM_TTL, BusNode, EventQueue, pattern_matches


class LocalHub:
    """Shared state of in-process nodes; its clock decides when claims expire."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._nodes: dict[str, LocalBus] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._duties: dict[str, tuple[str, float]] = {}
        self._subscribers: dict[EventQueue, tuple[str, bool]] = {}

    def attach(self, node: LocalBus) -> None:
        current = self._nodes.get(node.node_id)
        if current is not None and current is not node:
            raise BusError(f"node id {node.node_id!r} is already running on this hub")
        self._nodes[node.node_id] = node

    def detach(self, node: LocalBus) -> None:
        if self._nodes.get(node.node_id) is node:
            del self._nodes[node.node_id]

    def node(self, node_id: str) -> LocalBus | None:
        return self._nodes.get(node_id)

    def publish(self, topic: str, text: str) -> None:
        for queue, (match_text, is_prefix) in list(self._subscribers.items()):
            if pattern_matches(match_text, is_prefix, topic):
                # Each subscriber decodes its own copy, as it would from Redis.
                queue.push(Event(topic, decode_object(text)))

    def add_subscriber(self, queue: EventQueue, text: str, is_prefix: bool) -> None:
        self._subscribers[queue] = (text, is_prefix)

    def remove_subscriber(self, queue: EventQueue) -> None:
        self._subscribers.pop(queue, None)

    def owner(self, station_id: str) -> str | None:
        entry = self._claims.get(station_id)
        if entry is None:
            return None
        node_id, expires_at = entry
        if self._clock() >= expires_at:
            del self._claims[station_id]
            return None
        return node_id

    def claim(self, station_id: str, node_id: str, ttl: float) -> str | None:
        previous = self.owner(station_id)
        self._claims[station_id] = (node_id, self._clock() + ttl)
        return previous

    def release(self, station_id: str, node_id: str) -> bool:
        if self.owner(station_id) != node_id:
            return False
        del self._claims[station_id]
        return True

    def hold_duty(self, name: str, node_id: str, ttl: float) -> bool:
        holder = self._duties.get(name)
        now = self._clock()
        if holder is not None and holder[0] != node_id and now < holder[1]:
            return False
        self._duties[name] = (node_id, now + ttl)
        return True

    def release_duty(self, name: str, node_id: str) -> None:
        holder = self._duties.get(name)
        if holder is not None and holder[0] == node_id:
            del self._duties[name]

    def refresh(self, station_id: str, node_id: str, ttl: float) -> bool:
        """Extend, or re-create if it lapsed while nobody else claimed; False if taken."""
        owner = self.owner(station_id)
        if owner not in (None, node_id):
            return False
        self._claims[station_id] = (node_id, self._clock() + ttl)
        return True


class LocalBus(BusNode):
    """A node on an in-process hub; with no hub given it is a site of one node."""

    def __init__(
        self,
        *,
        node_id: str,
        namespace: str = "volthaus",
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        hub: LocalHub | None = None,
    ) -> None:
        super().__init__(node_id=node_id, namespace=namespace, claim_ttl=claim_ttl)
        self._hub = hub if hub is not None else LocalHub()

    @property
    def hub(self) -> LocalHub:
        return self._hub

    async def _open(self) -> None:
        self._hub.attach(self)

    async def _close(self) -> None:
        for queue in list(self._subscriptions):
            self._hub.remove_subscriber(queue)
        self._hub.detach(self)

    async def _publish(self, topic: str, text: str) -> None:
        self._hub.publish(topic, text)

    async def _add_subscription(self, queue: EventQueue, text: str, is_prefix: bool) -> None:
        self._hub.add_subscriber(queue, text, is_prefix)

    async def _remove_subscription(self, queue: EventQueue) -> None:
        self._hub.remove_subscriber(queue)

    async def _claim(self, station_id: str) -> str | None:
        previous = self._hub.claim(station_id, self.node_id, self.claim_ttl)
        if previous is not None and previous != self.node_id:
            loser = self._hub.node(previous)
            if loser is not None:
                loser._notify_lost(station_id, self.node_id)
        return previous

    async def _release_claim(self, station_id: str) -> bool:
        return self._hub.release(station_id, self.node_id)

    async def _owner(self, station_id: str) -> str | None:
        return self._hub.owner(station_id)

    async def _refresh_claims(self, station_ids: list[str]) -> list[str]:
        return [s for s in station_ids if not self._hub.refresh(s, self.node_id, self.claim_ttl)]

    async def _hold_duty(self, name: str, ttl: float) -> bool:
        return self._hub.hold_duty(name, self.node_id, ttl)

    async def _release_duty(self, name: str) -> None:
        self._hub.release_duty(name, self.node_id)

    async def _route_request(
        self, station_id: str, payload_text: str, timeout: float
    ) -> JsonObject:
        owner = self._hub.owner(station_id)
        if owner is None:
            raise StationNotConnected(station_id)
        node = self._hub.node(owner)
        if node is None or not node.running:
            raise StationNotConnected(station_id, f"its node {owner!r} is not running")
        # The handler runs directly in this task: cancelling the request cancels it.
        return await node._serve(station_id, decode_object(payload_text), timeout)
