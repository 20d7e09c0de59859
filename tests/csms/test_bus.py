"""One suite for both bus implementations: `local` always, `redis` when a server is given."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from csms.bus import (
    Bus,
    BusClosed,
    BusError,
    Event,
    LocalBus,
    LocalHub,
    RemoteError,
    RequestTimeout,
    StationNotConnected,
    Subscription,
    create_bus,
    open_bus,
)
from csms.bus.node import BusNode

REDIS_URL = os.environ.get("VOLTHAUS_TEST_REDIS_URL")

NodeFactory = Callable[..., Awaitable[Bus]]

# Generous bounds for things that happen "soon"; tests never assert how fast they happen.
SOON = 5.0


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def make_node(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    """Start nodes of one site: a shared LocalHub, or one fresh Redis namespace per test."""
    backend: str = request.param
    if backend == "redis" and not REDIS_URL:
        pytest.skip("VOLTHAUS_TEST_REDIS_URL is not set, so the Redis bus cannot be tested")
    namespace = f"vh-test-{uuid.uuid4().hex}"
    hub = LocalHub()
    nodes: list[Bus] = []

    async def node(node_id: str, *, claim_ttl: float = 10.0) -> Bus:
        bus: Bus
        if backend == "local":
            bus = LocalBus(node_id=node_id, namespace=namespace, claim_ttl=claim_ttl, hub=hub)
        else:
            bus = create_bus(REDIS_URL, node_id=node_id, namespace=namespace, claim_ttl=claim_ttl)
        await bus.start()
        nodes.append(bus)
        return bus

    yield node

    for bus in nodes:
        await bus.stop()
    if backend == "redis":
        import redis.asyncio as aioredis

        assert REDIS_URL is not None
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{namespace}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def next_event(events: Subscription) -> Event:
    return await asyncio.wait_for(anext(events), SOON)


async def wait_for_owner(bus: Bus, station_id: str, expected: str | None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SOON
    while (owner := await bus.owner_of(station_id)) != expected:
        assert loop.time() < deadline, f"owner of {station_id} stayed {owner!r}"
        await asyncio.sleep(0.05)


async def echo(station_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"station_id": station_id, "echo": payload}


# events


async def test_subscriber_gets_events_published_after_it_subscribed(make_node: NodeFactory) -> None:
    bus = await make_node("n1")
    await bus.publish("station.WB-A-01.status", {"status": "Unavailable"})
    async with bus.subscribe("station.WB-A-01.status") as events:
        await bus.publish("station.WB-A-01.status", {"status": "Available"})
        await bus.publish("station.WB-A-01.status", {"status": "Charging", "connector": 1})
        first = await next_event(events)
        second = await next_event(events)
    assert first == Event("station.WB-A-01.status", {"status": "Available"})
    assert second == Event("station.WB-A-01.status", {"status": "Charging", "connector": 1})


async def test_prefix_subscription_sees_only_its_prefix(make_node: NodeFactory) -> None:
    bus = await make_node("n1")
    async with bus.subscribe("station.WB-A-01.*") as one, bus.subscribe("*") as everything:
        await bus.publish("station.WB-A-02.status", {"n": 1})
        await bus.publish("station.WB-A-01.status", {"n": 2})
        await bus.publish("station.WB-A-01.meter", {"n": 3, "wh": 1520})
        await bus.publish("account.a-01.wallet", {"n": 4, "balance": "12.34"})
        assert [await next_event(one) for _ in range(2)] == [
            Event("station.WB-A-01.status", {"n": 2}),
            Event("station.WB-A-01.meter", {"n": 3, "wh": 1520}),
        ]
        assert [(await next_event(everything)).topic for _ in range(4)] == [
            "station.WB-A-02.status",
            "station.WB-A-01.status",
            "station.WB-A-01.meter",
            "account.a-01.wallet",
        ]


async def test_events_reach_subscribers_on_other_nodes(make_node: NodeFactory) -> None:
    web, ocpp = await make_node("web"), await make_node("ocpp")
    async with web.subscribe("account.a-01.*") as events, web.subscribe("account.*") as again:
        await ocpp.publish("account.a-01.wallet", {"balance": "40.00"})
        assert await next_event(events) == Event("account.a-01.wallet", {"balance": "40.00"})
        assert await next_event(again) == Event("account.a-01.wallet", {"balance": "40.00"})


async def test_closed_subscription_ends_and_gets_nothing_more(make_node: NodeFactory) -> None:
    bus = await make_node("n1")
    async with bus.subscribe("station.*") as first:
        pass
    async with bus.subscribe("station.*") as second:
        await bus.publish("station.WB-A-01.status", {"status": "Available"})
        assert (await next_event(second)).data == {"status": "Available"}
    assert [event async for event in first] == []


async def test_each_subscriber_gets_its_own_copy(make_node: NodeFactory) -> None:
    bus = await make_node("n1")
    async with bus.subscribe("t.x") as a, bus.subscribe("t.x") as b:
        await bus.publish("t.x", {"items": [1]})
        (await next_event(a)).data["items"].append(2)
        assert (await next_event(b)).data == {"items": [1]}


async def test_slow_subscriber_loses_the_oldest_events(make_node: NodeFactory) -> None:
    bus = await make_node("n1")
    async with bus.subscribe("t.*", max_pending=2) as slow, bus.subscribe("t.*") as fast:
        for n in range(4):
            await bus.publish("t.x", {"n": n})
        # Both queues are fed from the same delivery, so once `fast` has all, `slow` has too.
        for _ in range(4):
            await next_event(fast)
        assert [(await next_event(slow)).data["n"] for _ in range(2)] == [2, 3]
        assert slow.dropped == 2


async def test_bad_topics_and_payloads_are_refused(make_node: NodeFactory) -> None:
    bus = await make_node("n1")
    for topic in ("", "station.*", "station WB", "a?b"):
        with pytest.raises(ValueError):
            await bus.publish(topic, {})
    for pattern in ("", "sta*tion", "station.[ab]"):
        with pytest.raises(ValueError):
            async with bus.subscribe(pattern):
                pass
    with pytest.raises(TypeError, match="not JSON-encodable"):
        await bus.publish("t.x", {"amount": object()})
    with pytest.raises(ValueError, match="not JSON-encodable"):
        await bus.publish("t.x", {"amount": float("nan")})


# registry


async def test_claim_owner_and_release(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    assert await a.owner_of("WB-A-01") is None
    assert await a.claim("WB-A-01") is None
    assert await a.owner_of("WB-A-01") == "a"
    assert await b.owner_of("WB-A-01") == "a"
    assert await a.holds("WB-A-01") and not await b.holds("WB-A-01")
    assert a.held_stations() == {"WB-A-01"}
    assert await b.release("WB-A-01") is False
    assert await b.owner_of("WB-A-01") == "a"
    assert await a.release("WB-A-01") is True
    assert await b.owner_of("WB-A-01") is None
    assert a.held_stations() == frozenset()


async def test_live_node_keeps_its_claims_past_the_ttl(make_node: NodeFactory) -> None:
    a, b = await make_node("a", claim_ttl=0.6), await make_node("b")
    await a.claim("WB-A-01")
    await asyncio.sleep(1.5)
    assert await b.owner_of("WB-A-01") == "a"


async def test_dead_node_claims_expire(make_node: NodeFactory) -> None:
    a, b = await make_node("a", claim_ttl=1.0), await make_node("b")
    await a.claim("WB-A-01")
    await a.stop(release=False)
    assert await b.owner_of("WB-A-01") == "a"
    await wait_for_owner(b, "WB-A-01", None)


async def test_clean_stop_releases_claims(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    await a.claim("WB-A-01")
    await a.stop()
    assert await b.owner_of("WB-A-01") is None
    with pytest.raises(BusClosed):
        await a.claim("WB-A-02")


async def test_newest_claim_wins_and_old_node_learns_it(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    lost: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()

    async def on_lost(station_id: str, new_owner: str | None) -> None:
        await lost.put((station_id, new_owner))

    a.on_station_lost(on_lost)
    await a.claim("WB-A-01")
    assert await b.claim("WB-A-01") == "a"
    assert await asyncio.wait_for(lost.get(), SOON) == ("WB-A-01", "b")
    assert await a.owner_of("WB-A-01") == "b"
    assert not await a.holds("WB-A-01")
    assert "WB-A-01" not in a.held_stations()
    # The old node cleaning up late must not undo the takeover.
    assert await a.release("WB-A-01") is False
    assert await a.owner_of("WB-A-01") == "b"


async def test_refresh_does_not_take_a_station_back(make_node: NodeFactory) -> None:
    a, b = await make_node("a", claim_ttl=0.6), await make_node("b")
    await a.claim("WB-A-01")
    await b.claim("WB-A-01")
    await asyncio.sleep(0.5)
    assert await b.owner_of("WB-A-01") == "b"
    assert "WB-A-01" not in a.held_stations()


async def test_refresh_reports_stations_taken_while_the_notice_was_missed(
    make_node: NodeFactory,
) -> None:
    # The takeover notice normally reaches the old node first; this drives the backstop it
    # relies on when the notice is lost (e.g. the old node was cut off from Redis).
    a, b = await make_node("a"), await make_node("b")
    await b.claim("WB-A-01")
    await a.claim("WB-A-02")
    await a.release("WB-A-02")
    refresh = cast(BusNode, a)._refresh_claims
    assert await refresh(["WB-A-01", "WB-A-02"]) == ["WB-A-01"]
    assert await b.owner_of("WB-A-01") == "b"
    # A lapsed claim of a node that still has the websocket is re-asserted.
    assert await b.owner_of("WB-A-02") == "a"


# requests


async def test_request_reaches_the_node_holding_the_station(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    seen: list[str] = []

    async def handler(station_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(station_id)
        return {"status": "Accepted", "node": "a", "got": payload}

    a.set_request_handler(handler)
    b.set_request_handler(echo)
    await a.claim("WB-A-01")
    payload = {"action": "RemoteStopTransaction", "transactionId": 7}
    reply = await b.request_station("WB-A-01", payload, timeout=SOON)
    assert reply == {"status": "Accepted", "node": "a", "got": payload}
    # Its own station: answered in place, same contract.
    assert (await a.request_station("WB-A-01", {"x": 1}, timeout=SOON))["got"] == {"x": 1}
    assert seen == ["WB-A-01", "WB-A-01"]


async def test_concurrent_requests_get_their_own_replies(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    a.set_request_handler(echo)
    await a.claim("WB-A-01")
    await a.claim("WB-A-02")
    replies = await asyncio.gather(
        *(b.request_station(f"WB-A-0{1 + i % 2}", {"i": i}, timeout=SOON) for i in range(20))
    )
    assert replies == [
        {"station_id": f"WB-A-0{1 + i % 2}", "echo": {"i": i}} for i in range(20)
    ]


async def test_request_without_owner_is_not_connected(make_node: NodeFactory) -> None:
    b = await make_node("b")
    with pytest.raises(StationNotConnected) as caught:
        await b.request_station("WB-Z-99", {}, timeout=SOON)
    assert caught.value.station_id == "WB-Z-99"


async def test_request_to_a_dead_node_fails_without_waiting(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    a.set_request_handler(echo)
    await a.claim("WB-A-01")
    await a.stop(release=False)
    with pytest.raises(StationNotConnected):
        await b.request_station("WB-A-01", {}, timeout=30)


async def test_request_timeout(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    cancelled = asyncio.Event()

    async def stuck(station_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    a.set_request_handler(stuck)
    await a.claim("WB-A-01")
    with pytest.raises(RequestTimeout) as caught:
        await b.request_station("WB-A-01", {}, timeout=0.3)
    assert caught.value.station_id == "WB-A-01"
    assert isinstance(caught.value, TimeoutError)
    # The holding node does not keep working on a request nobody waits for.
    await asyncio.wait_for(cancelled.wait(), SOON)


async def test_handler_error_comes_back_typed(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")

    async def refusing(station_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"connector {payload['connector']} does not exist")

    a.set_request_handler(refusing)
    await a.claim("WB-A-01")
    with pytest.raises(RemoteError) as caught:
        await b.request_station("WB-A-01", {"connector": 3}, timeout=SOON)
    assert caught.value.error_type == "ValueError"
    assert caught.value.message == "connector 3 does not exist"
    assert caught.value.node_id == "a"
    assert caught.value.station_id == "WB-A-01"


async def test_handler_saying_not_connected_and_missing_handler(make_node: NodeFactory) -> None:
    a, b = await make_node("a"), await make_node("b")
    await a.claim("WB-A-01")
    with pytest.raises(RemoteError) as caught:
        await b.request_station("WB-A-01", {}, timeout=SOON)
    assert caught.value.error_type == "NoRequestHandler"

    async def gone(station_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise StationNotConnected(station_id, "websocket closed")

    a.set_request_handler(gone)
    with pytest.raises(StationNotConnected):
        await b.request_station("WB-A-01", {}, timeout=SOON)

    async def not_a_dict(station_id: str, payload: dict[str, Any]) -> Any:
        return ["Accepted"]

    a.set_request_handler(not_a_dict)
    with pytest.raises(RemoteError, match="not a dict"):
        await b.request_station("WB-A-01", {}, timeout=SOON)


# lifecycle


async def test_stop_leaves_no_tasks_and_ends_subscriptions(make_node: NodeFactory) -> None:
    before = asyncio.all_tasks()
    a, b = await make_node("a"), await make_node("b")
    a.set_request_handler(echo)
    await a.claim("WB-A-01")
    await b.request_station("WB-A-01", {}, timeout=SOON)
    async with b.subscribe("station.*") as events:
        await b.stop()
        await a.stop()
        assert [event async for event in events] == []
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(BusClosed):
        await b.publish("station.WB-A-01.status", {})


async def test_node_ids_are_unique_per_site(make_node: NodeFactory) -> None:
    await make_node("a")
    with pytest.raises(BusError, match="already running"):
        await make_node("a")


async def test_open_bus_without_url_is_an_in_process_bus() -> None:
    async with open_bus(None, node_id="solo") as bus:
        assert isinstance(bus, LocalBus)
        bus.set_request_handler(echo)
        await bus.claim("WB-A-01")
        assert await bus.request_station("WB-A-01", {"a": 1}, timeout=SOON) == {
            "station_id": "WB-A-01",
            "echo": {"a": 1},
        }
    assert not bus.held_stations()


@pytest.mark.redis
async def test_open_bus_with_redis_url() -> None:
    if not REDIS_URL:
        pytest.skip("VOLTHAUS_TEST_REDIS_URL is not set, so the Redis bus cannot be tested")
    namespace = f"vh-test-{uuid.uuid4().hex}"
    async with open_bus(REDIS_URL, node_id="n1", namespace=namespace) as bus:
        assert type(bus).__name__ == "RedisBus"
        await bus.claim("WB-A-01")
        assert await bus.owner_of("WB-A-01") == "n1"
    async with open_bus(REDIS_URL, node_id="n2", namespace=namespace) as other:
        assert await other.owner_of("WB-A-01") is None


# duties: one node at a time


async def test_a_duty_is_held_by_one_node_and_taken_over_when_it_lapses(
    make_node: NodeFactory,
) -> None:
    a, b = await make_node("a"), await make_node("b")
    assert await a.hold_duty("devices", 0.8)
    assert not await b.hold_duty("devices", 0.8)
    assert await a.hold_duty("devices", 0.8)  # the holder renews
    await asyncio.sleep(1.2)  # a died: it renews no more
    assert await b.hold_duty("devices", 0.8)
    assert not await a.hold_duty("devices", 0.8)


async def test_releasing_a_duty_hands_it_over_at_once_but_never_someone_elses(
    make_node: NodeFactory,
) -> None:
    a, b = await make_node("a"), await make_node("b")
    assert await a.hold_duty("devices", 30)
    await b.release_duty("devices")  # not b's to give up
    assert not await b.hold_duty("devices", 30)
    await a.release_duty("devices")
    assert await b.hold_duty("devices", 30)


async def test_the_duty_loops_run_on_one_node_and_move_when_it_dies(
    make_node: NodeFactory,
) -> None:
    from csms.duty import Duties

    ran: dict[str, int] = {"a": 0, "b": 0}

    def loop_of(node: str) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            while True:
                ran[node] += 1
                await asyncio.sleep(0.05)
        return loop

    a, b = await make_node("a"), await make_node("b")
    duty_a = Duties(a, {"work": loop_of("a")}, lease_s=0.9)
    duty_b = Duties(b, {"work": loop_of("b")}, lease_s=0.9)
    task_a = asyncio.create_task(duty_a.run())
    await asyncio.wait_for(duty_a.taken.wait(), SOON)
    task_b = asyncio.create_task(duty_b.run())
    await asyncio.sleep(0.6)
    assert ran["a"] > 0 and ran["b"] == 0 and not duty_b.holding
    task_a.cancel()  # a crash: no release, the lease must lapse
    with contextlib.suppress(asyncio.CancelledError):
        await task_a
    await asyncio.wait_for(duty_b.taken.wait(), SOON)
    assert ran["b"] > 0
    task_b.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task_b
