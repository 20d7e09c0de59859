"""A running OCPP server on 127.0.0.1 port 0 with an in-process bus, and inventory helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.bus import LocalBus, LocalHub
from csms.db.engine import session_factory
from csms.inventory.models import Site, Station, Tariff
from csms.ocpp.connection import Limits
from csms.ocpp.security import hash_station_password
from csms.ocpp.server import OcppServer, ServerOptions
from csms.simulator.station import SimStation

TARIFF = {"id": "wallbox", "currency": "EUR", "vat_percent": "19", "components": []}
PASSWORD = "correct-horse-battery-staple"


def utc_now() -> datetime:
    return datetime.now(UTC)


async def add_site(
    engine: AsyncEngine, site_id: str = "s1", *, auto_register: bool = False
) -> None:
    async with session_factory(engine)() as session:
        session.add(
            Site(
                id=site_id,
                name="Site",
                timezone="Europe/Berlin",
                currency="EUR",
                country="DE",
                auto_register_stations=auto_register,
            )
        )
        await session.flush()
        session.add(Tariff(site_id=site_id, id="wallbox", document=TARIFF))
        await session.commit()


async def add_station(
    engine: AsyncEngine,
    station_id: str,
    *,
    protocol: str = "ocpp1.6",
    profile: int = 1,
    password: str | None = PASSWORD,
    site_id: str = "s1",
    connectors: int = 2,
    idtag_format: str = "hex",
) -> None:
    async with session_factory(engine)() as session:
        session.add(
            Station(
                id=station_id,
                site_id=site_id,
                protocol=protocol,
                security_profile=profile,
                password_hash=hash_station_password(password) if password else None,
                connectors=connectors,
                tariff_id="wallbox",
                idtag_format=idtag_format,
            )
        )
        await session.commit()


async def add_badge(
    engine: AsyncEngine,
    uid: str = "04A2B3C4",
    account_id: str = "a-01",
    *,
    site_id: str = "s1",
    status: str = "active",
) -> None:
    from rfid.models import Badge
    from wallet.models import Account

    async with session_factory(engine)() as session:
        if await session.get(Account, account_id) is None:
            session.add(Account(id=account_id, site_id=site_id, ref=account_id,
                                name="Familie Keller"))
            await session.flush()
        session.add(Badge(site_id=site_id, uid=uid, account_id=account_id, status=status))
        await session.commit()


@dataclass
class Node:
    engine: AsyncEngine
    server: OcppServer
    bus: LocalBus

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ocpp"

    def station(self, station_id: str, **kwargs: Any) -> SimStation:
        kwargs.setdefault("password", PASSWORD)
        return SimStation(self.url, station_id, **kwargs)


async def start_node(
    engine: AsyncEngine,
    *,
    node_id: str = "n1",
    hub: LocalHub | None = None,
    options: ServerOptions | None = None,
    **kwargs: Any,
) -> Node:
    bus = LocalBus(node_id=node_id, hub=hub)
    await bus.start()
    server = OcppServer(
        engine=engine,
        bus=bus,
        clock=utc_now,
        heartbeat_interval_s=kwargs.pop("heartbeat_interval_s", 300),
        pending_retry_interval_s=kwargs.pop("pending_retry_interval_s", 60),
        options=options or ServerOptions(port=0, limits=Limits(call_timeout_s=10)),
        **kwargs,
    )
    await server.start()
    return Node(engine, server, bus)


async def stop_node(node: Node) -> None:
    await node.server.stop()
    await node.bus.stop()


@pytest.fixture
async def node(engine: AsyncEngine) -> AsyncIterator[Node]:
    """A server on each database backend with site s1 (no stations yet)."""
    await add_site(engine)
    running = await start_node(engine)
    yield running
    await stop_node(running)


@pytest.fixture
async def lite(sqlite_engine: AsyncEngine) -> AsyncIterator[Node]:
    """The same on SQLite only, for tests whose subject is not storage."""
    await add_site(sqlite_engine)
    running = await start_node(sqlite_engine)
    yield running
    await stop_node(running)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement sent while inside (an executemany counts once), upper-cased."""
    sent: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(" ".join(statement.upper().split()))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
