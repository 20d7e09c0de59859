"""After-boot work that cannot swamp the server: one queue, bounded, behind station messages;
lists checked against the schema once per site, format and version; a boot retry adds nothing;
a station that refuses the configuration read is not asked at every boot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import session_factory
from csms.ocpp import wire
from csms.ocpp.after_boot import AfterBootQueue, StationActivity
from csms.ocpp.connection import Limits
from csms.ocpp.server import ServerOptions
from rfid.registry import register_badge
from tests.csms.ocpp.conftest import Node, add_site, add_station, start_node, stop_node, utc_now
from wallet.models import Account

BADGES = 30


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def badged_site(engine: AsyncEngine) -> None:
    await add_site(engine)
    async with session_factory(engine)() as session:
        session.add(Account(id="a-01", site_id="s1", ref="a-01", name="Keller"))
        await session.flush()
        for n in range(BADGES):
            await register_badge(session, uid=f"04A2B3{n:02X}", account_id="a-01", now=utc_now())
        await session.commit()


@pytest.fixture
async def site(sqlite_engine: AsyncEngine) -> AsyncIterator[Node]:
    await badged_site(sqlite_engine)
    node = await start_node(sqlite_engine, options=ServerOptions(
        port=0, limits=Limits(call_timeout_s=10), after_boot_concurrency=1,
    ))
    yield node
    await stop_node(node)


@pytest.fixture
def list_checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per schema check of a SendLocalList payload (False: ours, True: an answer)."""
    seen: list[bool] = []
    real = wire._schema

    def counted(protocol: str, action: str, *, response: bool) -> Any:
        if action == "SendLocalList":
            seen.append(response)
        return real(protocol, action, response=response)

    monkeypatch.setattr(wire, "_schema", counted)
    return seen


async def test_a_list_is_checked_once_for_all_stations_of_a_format(
    site: Node, list_checks: list[bool]
) -> None:
    ids = [f"WB-{n}" for n in range(4)]
    for station_id in ids:
        await add_station(site.engine, station_id)
    await add_station(site.engine, "WB-DEC", idtag_format="dec-reversed")
    sims = [site.station(station_id) for station_id in [*ids, "WB-DEC"]]
    for sim in sims:
        await sim.connect()
    try:
        for sim in sims:
            assert await sim.boot() == "Accepted"
        await eventually(lambda: all(len(s.memory.local_list) == BADGES for s in sims))
        await site.server.after_boot.drained()
    finally:
        for sim in sims:
            await sim.close()
    # Our payload: once per idTag format (hex, dec-reversed), not once per station ...
    assert list_checks.count(False) == 2
    assert site.server.local_lists.schema_checks == 2
    # ... while every station's answer is still checked.
    assert list_checks.count(True) == 5


async def test_a_boot_retry_does_not_queue_the_work_again(site: Node) -> None:
    await add_station(site.engine, "WB-SLOW")
    await add_station(site.engine, "WB-NEXT")
    async with site.station("WB-SLOW") as slow, site.station("WB-NEXT") as nxt:
        # WB-SLOW never answers the configuration read (nor anything after it): its work holds
        # the only slot, and WB-NEXT's waits in the queue.
        slow.memory.hang_on = {"GetConfiguration"}
        assert await slow.boot() == "Accepted"
        await eventually(lambda: [a for a, _ in slow.memory.received] == ["GetConfiguration"])
        assert await nxt.boot() == "Accepted"
        assert await nxt.boot() == "Accepted"
        assert await nxt.boot() == "Accepted"
        # The boot answer comes after the queueing decision: nothing more is queued or started.
        queue = site.server.after_boot
        assert queue.pending == 2
        assert queue.started == 1
        assert [a for a, _ in slow.memory.received] == ["GetConfiguration"]
        assert nxt.memory.received == []


async def test_a_refused_configuration_read_is_not_repeated_at_every_boot(site: Node) -> None:
    await add_station(site.engine, "WB-OLD")
    sim = site.station("WB-OLD")
    sim.memory.refuse = {"GetConfiguration"}
    async with sim:
        assert await sim.boot() == "Accepted"
        # Refused, the list still follows.
        await eventually(lambda: len(sim.memory.local_list) == BADGES)
        assert next(a for a, _ in sim.memory.received) == "GetConfiguration"
        await site.server.after_boot.drained()
    async with site.station("WB-OLD") as again:
        again.memory.refuse = {"GetConfiguration"}
        assert await again.boot() == "Accepted"
        await eventually(lambda: len(again.memory.received) >= 1)
        await site.server.after_boot.drained()
        assert "GetConfiguration" not in [a for a, _ in again.memory.received]
    # New firmware: asked again.
    async with site.station("WB-OLD") as updated:
        updated.firmware = "2.0.0"
        assert await updated.boot() == "Accepted"
        await eventually(lambda: len(updated.memory.received) >= 1)
        assert next(a for a, _ in updated.memory.received) == "GetConfiguration"


@dataclass
class _Conn:
    station_id: str
    closed: bool = False


async def test_the_queue_is_bounded_and_waits_for_station_messages() -> None:
    activity = StationActivity()
    running: list[str] = []
    most = 0
    release = asyncio.Event()

    async def job(conn: _Conn) -> None:
        nonlocal most
        running.append(conn.station_id)
        most = max(most, len(running))
        await release.wait()
        running.remove(conn.station_id)

    queue = AfterBootQueue(job, activity, concurrency=2, max_defer_s=60)
    try:
        activity.begin()  # a station message in hand
        first = _Conn("WB-0")
        queue.submit(first)
        for n in range(1, 5):
            queue.submit(_Conn(f"WB-{n}"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert queue.started == 0 and queue.pending == 5
        activity.end()
        await eventually(lambda: queue.started == 2)
        for _ in range(20):
            await asyncio.sleep(0)
        assert queue.started == 2 and len(running) == 2
        # A boot retry of a station whose work runs (same connection) or waits adds nothing.
        queue.submit(first)
        queue.submit(_Conn("WB-4"))
        assert queue.pending == 5
        release.set()
        await asyncio.wait_for(queue.drained(), 10)
        assert queue.started == 5 and most == 2
    finally:
        await queue.close()


async def test_a_busy_node_still_gets_to_the_work_after_the_longest_wait() -> None:
    activity = StationActivity()
    done: list[str] = []

    async def job(conn: _Conn) -> None:
        done.append(conn.station_id)

    queue = AfterBootQueue(job, activity, concurrency=1, max_defer_s=0.05)
    try:
        activity.begin()  # never ends
        queue.submit(_Conn("WB-1"))
        queue.submit(_Conn("WB-1"))  # already queued: once
        await asyncio.wait_for(queue.drained(), 10)
        assert done == ["WB-1"]
    finally:
        await queue.close()


async def test_work_asked_for_again_while_it_runs_runs_once_more_after() -> None:
    """For list updates: a badge change while a station's update runs may come after the
    update read the list, so the station is updated once more (once, however often asked)."""
    activity = StationActivity()
    runs: list[str] = []
    release = asyncio.Event()

    async def job(conn: _Conn) -> None:
        runs.append(conn.station_id)
        if len(runs) == 1:
            await release.wait()

    queue = AfterBootQueue(job, activity, concurrency=2, max_defer_s=0.05, again_if_running=True)
    try:
        station = _Conn("WB-1")
        queue.submit(station)
        await eventually(lambda: queue.started == 1)
        queue.submit(station)
        queue.submit(station)
        assert queue.pending == 1
        release.set()
        await asyncio.wait_for(queue.drained(), 10)
        assert runs == ["WB-1", "WB-1"]
    finally:
        await queue.close()
