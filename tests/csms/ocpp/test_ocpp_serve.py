"""The composition root's entry: `serve_ocpp(settings, engine, bus, clock=...)`."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.bus import LocalBus
from csms.collector import FleetCount
from csms.ocpp.server import serve_ocpp
from csms.settings import Settings
from csms.simulator.station import SimStation
from tests.csms.ocpp.conftest import PASSWORD, Node, add_site, add_station, utc_now


async def test_serve_ocpp_from_settings(sqlite_engine: AsyncEngine) -> None:
    await add_site(sqlite_engine)
    await add_station(sqlite_engine, "WB-1", protocol="ocpp2.0.1")
    settings = Settings(host="127.0.0.1", ocpp_port=0, heartbeat_interval_s=42)
    bus = LocalBus(node_id="n1")
    await bus.start()
    try:
        async with serve_ocpp(settings, sqlite_engine, bus, clock=utc_now) as server:
            assert server.port and server.tls_port is None
            station = SimStation(
                f"ws://127.0.0.1:{server.port}/ocpp",
                "WB-1",
                protocol="ocpp2.0.1",
                password=PASSWORD,
            )
            async with station:
                assert await station.boot() == "Accepted"
                assert station.heartbeat_interval == 42
                assert server.connected_count == 1
    finally:
        await bus.stop()


async def test_the_fleet_count_follows_boots_and_departures(lite: Node) -> None:
    for n in (1, 2, 3):
        await add_station(lite.engine, f"WB-{n}")
    assert lite.server.fleet_count() == FleetCount(connected=0, departed=0, settling=False)
    first, second, third = (lite.station(f"WB-{n}") for n in (1, 2, 3))
    async with first, second:
        assert await first.boot() == "Accepted"
        assert await second.boot() == "Accepted"
        await third.connect()
        assert await third.boot() == "Accepted"
        await third.close()
        async with asyncio.timeout(10):
            while lite.server.fleet_count() != FleetCount(2, 1, settling=False):
                await asyncio.sleep(0.02)
    async with asyncio.timeout(10):
        while lite.server.fleet_count().departed < 3:
            await asyncio.sleep(0.02)
    assert lite.server.fleet_count() == FleetCount(connected=0, departed=3, settling=False)
