"""What real stations and certification tools trip over: replaced connections, dead peers,
huge frames, absurd values, ordering, floods."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from websockets.exceptions import ConnectionClosed

from csms.bus import LocalHub
from csms.db.engine import session_factory
from csms.ocpp.connection import Limits
from csms.ocpp.models import ConnectorStatus, MeterValue, OcppStation, StatusEvent
from csms.ocpp.server import ServerOptions
from tests.csms.ocpp.conftest import PASSWORD, Node, add_site, add_station, start_node, stop_node
from tests.csms.ocpp.wsclient import BOOT16, answer, exchange, open_raw


async def eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def state(node: Node, station_id: str) -> OcppStation | None:
    async with session_factory(node.engine)() as session:
        return await session.get(OcppStation, station_id)


@pytest.fixture
async def tight(sqlite_engine: AsyncEngine) -> AsyncIterator[Node]:
    """Short pings, small frames, a strict flood limit."""
    await add_site(sqlite_engine)
    node = await start_node(
        sqlite_engine,
        options=ServerOptions(
            port=0,
            ping_interval_s=0.2,
            ping_timeout_s=0.3,
            close_timeout_s=0.3,
            max_frame_bytes=4096,
            limits=Limits(rate_per_s=50, burst=20, max_connectors=8, max_samples=16),
        ),
    )
    yield node
    await stop_node(node)


async def test_newest_connection_wins(lite: Node) -> None:
    await add_station(lite.engine, "WB-1")
    old = await open_raw(lite.url, "WB-1", password=PASSWORD)
    await exchange(old, [2, "1", "BootNotification", BOOT16])
    new = await open_raw(lite.url, "WB-1", password=PASSWORD)
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await old.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert "newer connection" in closed.value.rcvd.reason
    # The old connection's end must not mark the station offline.
    answer = await exchange(new, [2, "2", "Heartbeat", {}])
    assert answer[0] == 3
    current = await state(lite, "WB-1")
    assert current is not None and current.connected
    assert lite.server.connection("WB-1") is not None
    await new.close()
    await eventually(lambda: _offline(lite, "WB-1"))


async def _offline(node: Node, station_id: str) -> bool:
    current = await state(node, station_id)
    return current is not None and not current.connected


async def test_newest_connection_wins_across_nodes(sqlite_engine: AsyncEngine) -> None:
    await add_site(sqlite_engine)
    await add_station(sqlite_engine, "WB-1")
    hub = LocalHub()
    first = await start_node(sqlite_engine, node_id="n1", hub=hub)
    second = await start_node(sqlite_engine, node_id="n2", hub=hub)
    try:
        old = await open_raw(first.url, "WB-1", password=PASSWORD)
        await exchange(old, [2, "1", "Heartbeat", {}])
        new = await open_raw(second.url, "WB-1", password=PASSWORD)
        await exchange(new, [2, "2", "Heartbeat", {}])
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await old.recv()
        assert await second.bus.owner_of("WB-1") == "n2"
        current = await state(second, "WB-1")
        assert current is not None and current.connected and current.node_id == "n2"
        await new.close()
    finally:
        await stop_node(first)
        await stop_node(second)


async def test_pings_reap_a_dead_station(tight: Node) -> None:
    await add_station(tight.engine, "WB-1")
    ws = await open_raw(tight.url, "WB-1", password=PASSWORD, ping_interval=None)
    await exchange(ws, [2, "1", "Heartbeat", {}])
    assert tight.server.connection("WB-1") is not None
    # The station goes silent: it no longer reads, so it never answers a ping.
    ws.transport.pause_reading()

    async def gone() -> bool:
        return tight.server.connection("WB-1") is None and await _offline(tight, "WB-1")

    await eventually(gone)
    ws.transport.abort()


async def test_frame_size_is_limited(tight: Node) -> None:
    await add_station(tight.engine, "WB-1")
    ws = await open_raw(tight.url, "WB-1", password=PASSWORD)
    huge = [2, "1", "DataTransfer", {"vendorId": "x", "data": "y" * 10_000}]
    await ws.send(json.dumps(huge))
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_absurd_values_are_capped(tight: Node) -> None:
    await add_station(tight.engine, "WB-1")
    ws = await open_raw(tight.url, "WB-1", password=PASSWORD)
    await exchange(ws, [2, "0", "BootNotification", BOOT16])
    answer = await exchange(
        ws,
        [
            2,
            "1",
            "StatusNotification",
            {"connectorId": 1_000_000_000, "errorCode": "NoError", "status": "Available"},
        ],
    )
    assert answer == [3, "1", {}]
    values = [{"value": str(i), "measurand": "Energy.Active.Import.Register"} for i in range(40)]
    values.append({"value": "1e300", "measurand": "Power.Active.Import"})
    answer = await exchange(
        ws,
        [
            2,
            "2",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {"timestamp": "2026-11-22T10:00:00Z", "sampledValue": values},
                    {
                        "timestamp": "2026-11-22T10:00:10Z",
                        "sampledValue": [{"value": "NaN"}, {"value": "1e300"}, {"value": "-5"}],
                    },
                ],
            },
        ],
    )
    assert answer == [3, "2", {}]
    await ws.close()
    async with session_factory(tight.engine)() as session:
        assert (await session.exec(select(ConnectorStatus))).all() == []
        stored = (await session.exec(select(MeterValue).order_by(col(MeterValue.id)))).all()
    # 16 samples per message at most; nothing absurd, nothing from the second reading.
    assert [m.wh for m in stored] == list(range(16))


async def test_one_stations_messages_are_handled_in_order(lite: Node) -> None:
    await add_station(lite.engine, "WB-1")
    ws = await open_raw(lite.url, "WB-1", password=PASSWORD)
    await exchange(ws, [2, "0", "BootNotification", BOOT16])
    sent = ["Available", "Preparing", "Charging", "SuspendedEV", "Finishing"] * 8
    for number, status in enumerate(sent):
        await ws.send(
            json.dumps(
                [
                    2,
                    f"s{number}",
                    "StatusNotification",
                    {"connectorId": 1, "errorCode": "NoError", "status": status},
                ]
            )
        )
    answers = [(await answer(ws))[1] for _ in sent]
    assert answers == [f"s{number}" for number in range(len(sent))]
    await ws.close()
    async with session_factory(lite.engine)() as session:
        history = (await session.exec(select(StatusEvent).order_by(col(StatusEvent.id)))).all()
    assert [e.status for e in history] == sent


async def test_a_flooding_station_harms_no_other(tight: Node) -> None:
    await add_station(tight.engine, "WB-FLOOD")
    await add_station(tight.engine, "WB-CALM")
    flood = await open_raw(tight.url, "WB-FLOOD", password=PASSWORD)
    calm = await open_raw(tight.url, "WB-CALM", password=PASSWORD)
    total = 3000
    frame = json.dumps([2, "f", "Heartbeat", {}])

    async def flooding() -> None:
        for _ in range(total):
            await flood.send(frame)

    flooder = asyncio.create_task(flooding())
    await asyncio.sleep(0.2)
    for number in range(5):
        answer = await exchange(calm, [2, f"c{number}", "Heartbeat", {}])
        assert answer[:2] == [3, f"c{number}"]
    # The calm station was served while the flood was still being held back.
    flooded = tight.server.connection("WB-FLOOD")
    assert flooded is not None and flooded.messages_in < total
    flooder.cancel()
    flood.transport.abort()
    await calm.close()
