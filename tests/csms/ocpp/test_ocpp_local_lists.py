"""Authorisation through rfid, and local lists pushed after boot and on badge changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import session_factory
from csms.ocpp.admin import set_send_after_boot
from csms.ocpp.local_lists import notify_badges_changed
from csms.ocpp.models import OcppStation
from csms.simulator.station import SimStation
from rfid.registry import block_badge, record_changes, register_badge
from tests.csms.ocpp.conftest import (
    Node,
    add_badge,
    add_site,
    add_station,
    start_node,
    statements,
    stop_node,
    utc_now,
)
from wallet.models import Account


async def eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def site(sqlite_engine: AsyncEngine) -> AsyncIterator[Node]:
    await add_site(sqlite_engine)
    async with session_factory(sqlite_engine)() as session:
        session.add(Account(id="a-01", site_id="s1", ref="a-01", name="Keller"))
        await session.flush()
        await register_badge(session, uid="04A2B3C4", account_id="a-01", now=utc_now())
        await register_badge(session, uid="04112233445566", account_id="a-01", now=utc_now())
        await session.commit()
    node = await start_node(sqlite_engine)
    yield node
    await stop_node(node)


async def list_version(node: Node, station_id: str) -> int | None:
    async with session_factory(node.engine)() as session:
        state = await session.get(OcppStation, station_id)
        return state.local_list_version if state else None


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_full_list_after_boot_then_differential(site: Node, protocol: str) -> None:
    # The reader of this station reports UIDs as the usual 10-digit reversed decimal.
    await add_station(site.engine, "WB-1", protocol=protocol, idtag_format="dec-reversed")
    async with site.station("WB-1", protocol=protocol) as sim:
        await sim.boot()
        await eventually(lambda: sim.memory.local_list_version == 2)
        sent = [a for a, _ in sim.memory.received]
        # First the configuration read (this station is new), then the list.
        read = "GetConfiguration" if protocol == "ocpp1.6" else "GetBaseReport"
        assert sent == [read, "GetLocalListVersion", "SendLocalList"]
        # 04A2B3C4 read with byte 0 least significant: 0xC4B3A204.
        assert sim.memory.local_list == {"3300106756": "Accepted", "28804199028494596": "Accepted"}
        # The server records the version once the station's answer is in.
        async with asyncio.timeout(10):
            while await list_version(site, "WB-1") != 2:
                await asyncio.sleep(0.02)
        # Authorize goes through rfid with the station's format.
        assert await sim.authorize("3300106756") == "Accepted"
        assert await sim.authorize("0000000001") == "Invalid"

        async with session_factory(site.engine)() as session:
            await block_badge(session, "s1", "04A2B3C4", now=utc_now())
            await session.commit()
        await notify_badges_changed(site.bus, "s1")
        await eventually(lambda: sim.memory.local_list_version == 3)
        _action, payload = sim.memory.received[-1]
        assert payload.get("update_type") == "Differential"
        assert sim.memory.local_list["3300106756"] == "Blocked"
        assert await sim.authorize("3300106756") == "Blocked"

    # Reconnecting with the current version: asked, nothing sent.
    async with site.station("WB-1", protocol=protocol) as again:
        again.memory.local_list_version = 3
        await again.boot()
        await eventually(lambda: len(again.memory.received) >= 1)
        await asyncio.sleep(0.2)
        assert [a for a, _ in again.memory.received] == ["GetLocalListVersion"]


async def test_switched_off_station_hears_nothing_on_its_own(site: Node) -> None:
    await add_station(site.engine, "WB-Q")
    async with session_factory(site.engine)() as session:
        await set_send_after_boot(session, "WB-Q", False)
        await session.commit()
    async with site.station("WB-Q") as sim:
        await sim.boot()
        async with session_factory(site.engine)() as session:
            await block_badge(session, "s1", "04A2B3C4", now=utc_now())
            await session.commit()
        await notify_badges_changed(site.bus, "s1")
        await sim.heartbeat()
        await asyncio.sleep(0.3)
        assert sim.memory.received == []


async def polling_node(engine: AsyncEngine) -> Node:
    """A node polling the list versions every 0.1 s, on a site with one badge."""
    from csms.ocpp.connection import Limits
    from csms.ocpp.server import ServerOptions

    await site_with_one_badge(engine)
    return await start_node(
        engine, options=ServerOptions(port=0, limits=Limits(), local_list_poll_s=0.1)
    )


async def site_with_one_badge(engine: AsyncEngine) -> None:
    """Site s1 with one household and its badge 04A2B3C4."""
    await add_site(engine)
    async with session_factory(engine)() as session:
        session.add(Account(id="a-01", site_id="s1", ref="a-01", name="Keller"))
        await session.flush()
        await register_badge(session, uid="04A2B3C4", account_id="a-01", now=utc_now())
        await session.commit()


async def test_poll_catches_changes_without_bus_event(sqlite_engine: AsyncEngine) -> None:
    node = await polling_node(sqlite_engine)
    try:
        await add_station(sqlite_engine, "WB-1")
        sim: SimStation = node.station("WB-1")
        async with sim:
            await sim.boot()
            await eventually(lambda: sim.memory.local_list_version == 1)
            async with session_factory(sqlite_engine)() as session:
                await block_badge(session, "s1", "04A2B3C4", now=utc_now())
                await session.commit()
            await eventually(lambda: sim.memory.local_list_version == 2)
            assert sim.memory.local_list == {"04A2B3C4": "Blocked"}
    finally:
        await stop_node(node)


async def test_the_poll_reads_no_station_rows_and_syncs_only_stale_stations(
    sqlite_engine: AsyncEngine,
) -> None:
    """With every list current, a poll reads the site's version and nothing per station; a
    station whose list fell behind (here: its confirmed version reset) is brought up to date
    alone."""
    node = await polling_node(sqlite_engine)
    try:
        await add_station(sqlite_engine, "WB-1")
        await add_station(sqlite_engine, "WB-2")
        async with node.station("WB-1") as one, node.station("WB-2") as two:
            await one.boot()
            await two.boot()
            await eventually(lambda: one.memory.local_list_version == 1
                             and two.memory.local_list_version == 1)
            with statements(sqlite_engine) as sent:
                await asyncio.sleep(0.5)
            assert any("FROM BADGE_LIST_VERSION" in s for s in sent)
            assert not any("FROM OCPP_STATION" in s for s in sent)
            # WB-2 lost its list and the server knows it, as after an update that failed.
            two.memory.local_list_version = 0
            two.memory.local_list = {}
            await node.server.service.set_local_list_version("WB-2", 0)
            node.server.local_lists._confirmed["WB-2"] = 0
            await eventually(lambda: two.memory.local_list_version == 1)
            assert two.memory.local_list == {"04A2B3C4": "Accepted"}
            with statements(sqlite_engine) as sent:
                await asyncio.sleep(0.5)
            # Once current, neither is asked again.
            assert not any("FROM OCPP_STATION" in s for s in sent)
    finally:
        await stop_node(node)


async def test_a_list_built_for_one_boot_never_hides_a_later_change(site: Node) -> None:
    """Boots share a built list for a while; a badge change in between still reaches the next
    station that boots (the site's version is read at every push)."""
    await add_station(site.engine, "WB-A")
    await add_station(site.engine, "WB-B")
    async with site.station("WB-A") as first:
        await first.boot()
        await eventually(lambda: first.memory.local_list_version > 0)
        first_version = first.memory.local_list_version
        assert set(first.memory.local_list) == {"04A2B3C4", "04112233445566"}
    async with session_factory(site.engine)() as session:
        await register_badge(session, uid="04DDEEFF", account_id="a-01", now=utc_now())
        await session.commit()
    async with site.station("WB-B") as second:
        await second.boot()
        await eventually(lambda: second.memory.local_list_version > first_version)
        assert set(second.memory.local_list) == {"04A2B3C4", "04112233445566", "04DDEEFF"}


async def test_a_badge_is_authorised_as_the_station_sites_badge(node: Node) -> None:
    """The same UID is a badge on two sites: blocked on s2, active on s1. A station answers
    for its own site's card, and its local list holds only its own site's badges."""
    await add_site(node.engine, "s2")
    await add_badge(node.engine, "04A2B3C4", "a-01", site_id="s1")
    await add_badge(node.engine, "04A2B3C4", "b-01", site_id="s2", status="blocked")
    async with session_factory(node.engine)() as session:
        for site_id in ("s1", "s2"):  # as the registry would log them
            await record_changes(session, site_id, ["04A2B3C4"])
        await session.commit()
    await add_station(node.engine, "WB-S1", site_id="s1")
    await add_station(node.engine, "WB-S2", site_id="s2")
    async with node.station("WB-S1") as one, node.station("WB-S2") as two:
        await one.boot()
        await two.boot()
        assert await one.authorize("04A2B3C4") == "Accepted"
        assert await two.authorize("04A2B3C4") == "Blocked"
        await eventually(lambda: one.memory.local_list == {"04A2B3C4": "Accepted"})
        await eventually(lambda: two.memory.local_list == {"04A2B3C4": "Blocked"})


async def test_a_badge_change_updates_a_sites_stations_a_few_at_a_time(
    sqlite_engine: AsyncEngine,
) -> None:
    """A badge change reaches every connected station of the site, through a bounded queue:
    at 10,000 stations a call to each at once would swamp the node."""
    from csms.ocpp.connection import Limits
    from csms.ocpp.server import ServerOptions

    await site_with_one_badge(sqlite_engine)
    node = await start_node(sqlite_engine, options=ServerOptions(
        port=0, limits=Limits(), after_boot_concurrency=2, local_list_poll_s=3600))
    ids = [f"WB-{n}" for n in range(10)]
    for station_id in ids:
        await add_station(sqlite_engine, station_id)
    sims = [node.station(station_id) for station_id in ids]
    try:
        for sim in sims:
            await sim.connect()
            await sim.boot()
        await eventually(lambda: all(s.memory.local_list_version == 1 for s in sims))
        async with session_factory(sqlite_engine)() as session:
            await block_badge(session, "s1", "04A2B3C4", now=utc_now())
            await session.commit()
        lists = node.server.local_lists
        most = 0

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, lists.syncs_running)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await notify_badges_changed(node.bus, "s1")
        await eventually(lambda: all(s.memory.local_list_version == 2 for s in sims))
        await asyncio.wait_for(lists.syncs_done(), 10)
        watcher.cancel()
        assert all(s.memory.local_list == {"04A2B3C4": "Blocked"} for s in sims)
        assert 0 < most <= 2
    finally:
        for sim in sims:
            await sim.close()
        await stop_node(node)
