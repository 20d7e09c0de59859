"""Redis bus: nodes of one site share a namespace on one Redis server.

Layout under ``{namespace}:bus:``

- ``station:{station_id}``: string key holding the owning node id, with a TTL that the owner
  keeps extending; a crashed node's claims vanish when it runs out.
- ``node:{node_id}``: pub/sub channel each node listens on, carrying requests for its stations,
  replies to its own requests (matched by correlation id) and notices of stations taken over.
- ``event:{topic}``: pub/sub channel of each event topic; prefix subscriptions use PSUBSCRIBE.

Requests go over pub/sub rather than a stream on purpose: a command for a charger is worthless
after its timeout, and PUBLISH returning 0 receivers tells at once that the owner is gone,
instead of waiting out the timeout on a claim that has not expired yet.
"""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from csms.bus.errors import BusClosed, BusError, StationNotConnected
from csms.bus.interface import Event, JsonObject, decode_object
from csms.bus.node import DEFAULT_CLAIM_TTL, BusNode, EventQueue

# Newest claim wins, but a refresh must never take a station back from a newer owner. A
# lapsed key is re-created: the node still has the websocket (it would have released it
# otherwise), e.g. after a long pause or a Redis restart.
_REFRESH = """
local result = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    result[i] = 1
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    result[i] = 1
  else
    result[i] = 0
  end
end
return result
"""

# Releasing must not delete a claim a newer owner made in the meantime.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# A duty's lease: taken when free, extended by its holder, refused to anybody else.
_HOLD_DUTY = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_REFRESH_BATCH = 500
REDIS_POOL_SIZE = 64
REDIS_POOL_WAIT_S = 10.0


def _text_or_none(value: object) -> str | None:
    # decode_responses=True makes these str; the client's stubs cannot know that.
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


class RedisBus(BusNode):
    def __init__(
        self,
        *,
        url: str,
        node_id: str,
        namespace: str = "volthaus",
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        subscribe_timeout: float = 10.0,
    ) -> None:
        super().__init__(node_id=node_id, namespace=namespace, claim_ttl=claim_ttl)
        self._url = url
        self._subscribe_timeout = subscribe_timeout
        self._root = f"{namespace}:bus:"
        self._event_prefix = f"{self._root}event:"
        self._own_channel = self._node_channel(node_id)
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._refresh_script: Any = None
        self._release_script: Any = None
        self._duty_script: Any = None
        self._pending: dict[str, asyncio.Future[JsonObject]] = {}
        # Redis confirms (P)SUBSCRIBE commands in the order sent, so a FIFO per name pairs
        # each confirmation with the subscriber waiting for it.
        self._confirmations: dict[tuple[str, str], collections.deque[asyncio.Future[None]]] = {}
        self._listeners: dict[str, set[EventQueue]] = {}
        self._queue_names: dict[EventQueue, str] = {}
        self._subscribe_lock = asyncio.Lock()

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.claim_ttl * 1000))

    def _node_channel(self, node_id: str) -> str:
        return f"{self._root}node:{node_id}"

    def _station_key(self, station_id: str) -> str:
        return f"{self._root}station:{station_id}"

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise BusClosed(f"bus node {self.node_id!r} is not connected to Redis")
        return self._redis

    # lifecycle

    async def _open(self) -> None:
        # A boot storm publishes thousands of events at once: redis-py's default pool (100
        # connections) then refuses with MaxConnectionsError. A blocking pool makes them wait
        # their turn for one of a bounded number of connections instead (seen in the soak).
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url, decode_responses=True, max_connections=REDIS_POOL_SIZE,
            timeout=REDIS_POOL_WAIT_S)
        self._redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        try:
            await self._redis.ping()
            for _channel, listeners in await self._redis.pubsub_numsub(self._own_channel):
                if listeners:
                    raise BusError(
                        f"node id {self.node_id!r} is already running in namespace "
                        f"{self.namespace!r}"
                    )
            self._refresh_script = self._redis.register_script(_REFRESH)
            self._release_script = self._redis.register_script(_RELEASE)
            self._duty_script = self._redis.register_script(_HOLD_DUTY)
            self._pubsub = self._redis.pubsub()
            confirmed = self._expect_confirmation("subscribe", self._own_channel)
            await self._pubsub.subscribe(self._own_channel)
            self._reader = asyncio.create_task(self._read_loop(), name=f"bus-read-{self.node_id}")
            await self._await_confirmation(confirmed, self._own_channel)
        except BaseException:
            await self._close()
            raise

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusClosed(f"bus node {self.node_id!r} stopped"))
        self._pending.clear()
        for waiting in self._confirmations.values():
            for confirmation in waiting:
                confirmation.cancel()
        self._confirmations.clear()
        self._listeners.clear()
        self._queue_names.clear()
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _read_loop(self) -> None:
        assert self._pubsub is not None
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except Exception:
                # redis-py reconnects and re-subscribes on the next read; only pace it. Any
                # error is retried: a reader that died would leave the node deaf but alive.
                self._log.warning("bus.redis_read_failed", retry_in=backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if message is not None:
                try:
                    self._dispatch(message)
                except Exception:
                    self._log.exception("bus.dispatch_failed", channel=message.get("channel"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("subscribe", "psubscribe"):
            waiting = self._confirmations.get((kind, message["channel"]))
            while waiting:
                confirmation = waiting.popleft()
                if not confirmation.done():
                    confirmation.set_result(None)
                    break
            return
        if kind == "message":
            channel = message["channel"]
            if channel == self._own_channel:
                self._on_node_message(message["data"])
                return
            name = channel
        elif kind == "pmessage":
            name = message["pattern"]
            channel = message["channel"]
        else:
            return
        queues = self._listeners.get(name)
        if not queues:
            return
        topic = channel.removeprefix(self._event_prefix)
        for queue in list(queues):
            queue.push(Event(topic, decode_object(message["data"])))

    def _on_node_message(self, data: str) -> None:
        message = decode_object(data)
        kind = message.get("kind")
        if kind == "request":
            self._spawn(self._answer(message), f"bus-serve-{message.get('station_id')}")
        elif kind == "reply":
            future = self._pending.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message["envelope"])
        elif kind == "lost":
            self._notify_lost(str(message["station_id"]), message.get("by"))
        else:
            self._log.warning("bus.unknown_node_message", kind=kind)

    # events

    async def _publish(self, topic: str, text: str) -> None:
        await self._client().publish(self._event_prefix + topic, text)

    def _expect_confirmation(self, kind: str, name: str) -> asyncio.Future[None]:
        confirmation: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault((kind, name), collections.deque()).append(confirmation)
        return confirmation

    async def _await_confirmation(self, confirmation: asyncio.Future[None], name: str) -> None:
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await confirmation
        except TimeoutError:
            raise BusError(f"Redis did not confirm the subscription to {name!r}") from None

    async def _add_subscription(self, queue: EventQueue, text: str, is_prefix: bool) -> None:
        name = self._event_prefix + text + ("*" if is_prefix else "")
        async with self._subscribe_lock:
            self._queue_names[queue] = name
            queues = self._listeners.get(name)
            if queues is not None:
                queues.add(queue)
                return
            self._listeners[name] = {queue}
            if self._pubsub is None:
                raise BusClosed(f"bus node {self.node_id!r} is not connected to Redis")
            kind = "psubscribe" if is_prefix else "subscribe"
            confirmation = self._expect_confirmation(kind, name)
            try:
                if is_prefix:
                    await self._pubsub.psubscribe(name)
                else:
                    await self._pubsub.subscribe(name)
                await self._await_confirmation(confirmation, name)
            except BaseException:
                await self._drop_listener(queue)
                raise

    async def _remove_subscription(self, queue: EventQueue) -> None:
        async with self._subscribe_lock:
            await self._drop_listener(queue)

    async def _drop_listener(self, queue: EventQueue) -> None:
        name = self._queue_names.pop(queue, None)
        if name is None:
            return
        queues = self._listeners.get(name)
        if queues is None:
            return
        queues.discard(queue)
        if queues:
            return
        del self._listeners[name]
        if self._pubsub is None:
            return
        try:
            if name.endswith("*"):
                await self._pubsub.punsubscribe(name)
            else:
                await self._pubsub.unsubscribe(name)
        except (ConnectionError, OSError, aioredis.RedisError):
            self._log.warning("bus.unsubscribe_failed", name=name, exc_info=True)

    # registry

    async def _claim(self, station_id: str) -> str | None:
        client = self._client()
        previous = _text_or_none(
            await client.set(self._station_key(station_id), self.node_id, px=self.ttl_ms, get=True)
        )
        if previous is not None and previous != self.node_id:
            notice = {"kind": "lost", "station_id": station_id, "by": self.node_id}
            await client.publish(self._node_channel(previous), json.dumps(notice))
        return previous

    async def _release_claim(self, station_id: str) -> bool:
        self._client()
        removed = await self._release_script(
            keys=[self._station_key(station_id)], args=[self.node_id]
        )
        return bool(removed)

    async def _owner(self, station_id: str) -> str | None:
        return _text_or_none(await self._client().get(self._station_key(station_id)))

    async def _refresh_claims(self, station_ids: list[str]) -> list[str]:
        self._client()
        lost: list[str] = []
        for start in range(0, len(station_ids), _REFRESH_BATCH):
            batch = station_ids[start : start + _REFRESH_BATCH]
            kept = await self._refresh_script(
                keys=[self._station_key(s) for s in batch], args=[self.node_id, self.ttl_ms]
            )
            lost.extend(s for s, ok in zip(batch, kept, strict=True) if not ok)
        return lost

    # duties

    def _duty_key(self, name: str) -> str:
        return f"{self._root}duty:{name}"

    async def _hold_duty(self, name: str, ttl: float) -> bool:
        self._client()
        held = await self._duty_script(keys=[self._duty_key(name)],
                                       args=[self.node_id, max(1, round(ttl * 1000))])
        return bool(held)

    async def _release_duty(self, name: str) -> None:
        self._client()
        await self._release_script(keys=[self._duty_key(name)], args=[self.node_id])

    # requests

    async def _route_request(
        self, station_id: str, payload_text: str, timeout: float
    ) -> JsonObject:
        owner = await self._owner(station_id)
        if owner is None:
            raise StationNotConnected(station_id)
        payload = decode_object(payload_text)
        if owner == self.node_id:
            return await self._serve(station_id, payload, timeout)
        correlation = uuid.uuid4().hex
        reply: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = reply
        try:
            request = {
                "kind": "request",
                "id": correlation,
                "from": self.node_id,
                "station_id": station_id,
                "timeout": timeout,
                "payload": payload,
            }
            receivers = await self._client().publish(self._node_channel(owner), json.dumps(request))
            if not receivers:
                raise StationNotConnected(station_id, f"its node {owner!r} is not listening")
            return await reply
        finally:
            self._pending.pop(correlation, None)

    async def _answer(self, request: JsonObject) -> None:
        station_id = str(request["station_id"])
        payload = request.get("payload")
        timeout = float(request.get("timeout", 0)) or self.claim_ttl
        if isinstance(payload, dict):
            envelope = await self._serve(station_id, payload, timeout)
        else:
            envelope = self._failure("TypeError", "request payload is not a JSON object")
        reply = {"kind": "reply", "id": request.get("id"), "envelope": envelope}
        try:
            receivers = await self._client().publish(
                self._node_channel(str(request["from"])), json.dumps(reply)
            )
        except Exception:
            # The requester will time out; nobody awaits this task to hear about it.
            self._log.warning("bus.reply_failed", station_id=station_id, exc_info=True)
            return
        if not receivers:
            self._log.info("bus.reply_unclaimed", station_id=station_id, to_node=request["from"])
