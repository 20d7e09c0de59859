"""The handshake: path, subprotocol, inventory, Basic auth (profile 1), auto-registration."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select
from websockets.exceptions import InvalidStatus

from csms.db.engine import session_factory
from csms.inventory.models import Station
from csms.ocpp.admin import ApprovalError
from csms.ocpp.models import SecurityEvent
from csms.ocpp.security import verify_station_password
from tests.conftest import JsonLogs
from tests.csms.ocpp.conftest import PASSWORD, Node, add_site, add_station, start_node, stop_node
from tests.csms.ocpp.wsclient import BOOT16, exchange, open_raw


async def refused(node: Node, station_id: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as caught:
        ws = await open_raw(node.url, station_id, **kwargs)  # type: ignore[arg-type]
        await ws.close()
    return caught.value.response.status_code


async def security_events(node: Node) -> list[SecurityEvent]:
    async with session_factory(node.engine)() as session:
        return list((await session.exec(select(SecurityEvent))).all())


async def test_handshake_refusals(lite: Node) -> None:
    await add_station(lite.engine, "WB-1")
    # No OCPP subprotocol offered: refused at the HTTP level.
    assert await refused(lite, "WB-1", protocols=["chat"], password=PASSWORD) == 400
    assert await refused(lite, "WB-1", protocols=[], password=PASSWORD) == 400
    # Configured for 1.6, offering only 2.0.1.
    assert await refused(lite, "WB-1", protocols=["ocpp2.0.1"], password=PASSWORD) == 400
    assert await refused(lite, "WB-404", password=PASSWORD) == 404
    assert await refused(lite, "WB-1") == 401
    assert await refused(lite, "WB-1", password="wrong-password-xyz") == 401
    events = await security_events(lite)
    assert [e.type for e in events] == [
        "SecurityProfileNotMet",
        "InvalidChargingStationCredentials",
    ]
    assert all(e.station_id == "WB-1" and e.source == "csms" for e in events)


async def test_refused_handshakes_are_logged_with_the_reason(
    lite: Node, json_logs: JsonLogs
) -> None:
    await add_station(lite.engine, "WB-1")
    long_id = "X" * 300
    assert await refused(lite, "WB-404", password=PASSWORD) == 404
    assert await refused(lite, long_id, password=PASSWORD) == 404
    assert await refused(lite, "WB-1", password="wrong-password-xyz") == 401
    assert await refused(lite, "WB-1", protocols=["ocpp2.0.1"], password=PASSWORD) == 400
    assert await refused(lite, "WB-1", protocols=["chat"], password=PASSWORD) == 400

    lines = json_logs.lines("ocpp.handshake_refused")
    assert [(line["station_id"][:8], line["status"]) for line in lines] == [
        ("WB-404", 404), ("X" * 8, 404), ("WB-1", 401), ("WB-1", 400), ("WB-1", 400),
    ]
    unknown, too_long, wrong_password, wrong_version, no_ocpp = lines
    assert unknown["reason"] == "unknown station" and unknown["level"] == "warning"
    assert "1 to 48" in too_long["reason"]
    assert too_long["station_id"] == "X" * 64 and too_long["station_id_length"] == 300
    assert wrong_password["reason"] == "wrong station credentials"
    assert wrong_version["reason"].startswith("this station is configured for ocpp1.6")
    assert wrong_version["subprotocols"] == ["ocpp2.0.1"]
    assert no_ocpp["reason"].startswith("offer the websocket subprotocol")
    assert all(line["peer"] == "127.0.0.1" for line in lines)
    assert "wrong-password-xyz" not in json_logs.text()


async def test_both_paths_and_profile_zero(lite: Node) -> None:
    await add_station(lite.engine, "WB-1")
    await add_station(lite.engine, "WB-0", profile=0, password=None)
    ws = await open_raw(lite.url.removesuffix("/ocpp"), "WB-1", password=PASSWORD)
    assert ws.subprotocol == "ocpp1.6"
    assert (await exchange(ws, [2, "1", "BootNotification", BOOT16]))[2]["status"] == "Accepted"
    await ws.close()
    ws = await open_raw(lite.url, "WB-0", protocols=["ocpp2.0.1", "ocpp1.6"])
    assert ws.subprotocol == "ocpp1.6"
    await ws.close()


async def test_wrong_user_name_is_refused(lite: Node) -> None:
    from websockets.asyncio.client import connect

    from tests.csms.ocpp.wsclient import basic

    await add_station(lite.engine, "WB-1")
    with pytest.raises(InvalidStatus) as caught:
        await connect(
            f"{lite.url}/WB-1",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=basic("WB-2", PASSWORD),
        )
    assert caught.value.response.status_code == 401


async def test_auto_registered_station_pending_until_approved(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    await add_site(sqlite_engine, "s1", auto_register=True)
    node = await start_node(sqlite_engine, pending_retry_interval_s=17)
    try:
        sim = node.station("WB-NEW", protocol="ocpp2.0.1", password="first-password-0001")
        async with sim:
            assert await sim.boot() == "Pending"
            assert sim.heartbeat_interval == 17
            # Pending: no transactions (SecurityError), heartbeats still fine.
            await sim.heartbeat()
            from ocpp.exceptions import SecurityError

            with pytest.raises(SecurityError):
                await sim.authorize("04A2B3C4")
        async with session_factory(sqlite_engine)() as session:
            station = await session.get(Station, "WB-NEW")
            assert station is not None and station.pending_approval
            assert station.site_id == "s1" and station.protocol == "ocpp2.0.1"
            assert station.security_profile == 1
            assert verify_station_password("first-password-0001", station.password_hash or "")
            # No tariff until approved with one (never the site's first one by default).
            assert station.tariff_id is None
        with pytest.raises(ApprovalError, match="tariff: required"):
            await node.server.service.approve("WB-NEW")
        assert await node.server.service.approve("WB-NEW", "wallbox")
        async with node.station(
            "WB-NEW", protocol="ocpp2.0.1", password="first-password-0001"
        ) as sim:
            assert await sim.boot() == "Accepted"
            assert sim.heartbeat_interval == 300
        # Now known: a wrong password is refused like for any station.
        assert await refused(node, "WB-NEW", protocols=["ocpp2.0.1"], password="x" * 20) == 401
    finally:
        await stop_node(node)


async def test_unknown_station_refused_without_auto_registration(lite: Node) -> None:
    assert await refused(lite, "WB-NEW", password=PASSWORD) == 404
    async with session_factory(lite.engine)() as session:
        assert await session.get(Station, "WB-NEW") is None


async def test_guessing_a_password_is_paused(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from csms.ocpp.connection import Limits
    from csms.ocpp.server import ServerOptions

    await add_site(sqlite_engine)
    await add_station(sqlite_engine, "WB-1")
    node = await start_node(sqlite_engine, options=ServerOptions(
        port=0, limits=Limits(), login_failures=3, login_window_s=60, login_lockout_s=0.6,
    ))
    try:
        for attempt in range(3):
            assert await refused(node, "WB-1", password=f"guess-number-{attempt:04d}") == 401
        # Locked: even the right password waits, and nothing is hashed meanwhile.
        with pytest.raises(InvalidStatus) as caught:
            await open_raw(node.url, "WB-1", password=PASSWORD)
        assert caught.value.response.status_code == 429
        assert int(caught.value.response.headers["Retry-After"]) >= 1
        # Another station is not affected.
        await add_station(sqlite_engine, "WB-2")
        other = await open_raw(node.url, "WB-2", password=PASSWORD)
        await other.close()
        await asyncio.sleep(0.7)
        ws = await open_raw(node.url, "WB-1", password=PASSWORD)
        await ws.close()
    finally:
        await stop_node(node)


@pytest.mark.parametrize("compression", [True, False])
async def test_websocket_compression_is_a_setting(sqlite_engine, compression: bool) -> None:  # type: ignore[no-untyped-def]
    from csms.ocpp.connection import Limits
    from csms.ocpp.server import ServerOptions

    await add_site(sqlite_engine)
    await add_station(sqlite_engine, "WB-1")
    node = await start_node(
        sqlite_engine, options=ServerOptions(port=0, limits=Limits(), compression=compression)
    )
    try:
        # The client offers permessage-deflate (websockets does by default).
        ws = await open_raw(node.url, "WB-1", password=PASSWORD)
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        await ws.close()
        assert ("permessage-deflate" in negotiated) is compression
    finally:
        await stop_node(node)
