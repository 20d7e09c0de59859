"""A node for charging tests: the demo site imported, a real OCPP server on 127.0.0.1 port 0 with
billing plugged in, a clock the test sets, and stations driven with explicit timestamps."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect

from csms.bus import LocalBus
from csms.charging.models import ChargingSession
from csms.charging.sessions import BillingOptions, BillingService
from csms.charging.views import SessionView, session_view, session_views, sessions_query
from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site
from csms.ocpp.commands import StationGateway
from csms.ocpp.connection import Limits
from csms.ocpp.server import OcppServer, ServerOptions
from csms.simulator.station import SimStation
from wallet.service import wallet_view

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "examples" / "demo-site.yaml"
T0 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # a Monday, 17:00 in Berlin
PASSWORDS = {"WB-A-01": "demo-password-A01", "WB-B-01": "demo-password-B01"}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> datetime:
        self.now = T0 + timedelta(minutes=minutes)
        return self.now


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def minutes(value: float) -> datetime:
    return T0 + timedelta(minutes=value)


def demo_document() -> dict[str, Any]:
    """The demo site without its load management: these tests watch the exact frames of
    billing, and the boot's fallback profiles (tests/load) would be CALLs in between."""
    document: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document.pop("load", None)
    return document


class Box:
    """A station sending what a test tells it, with the station's own timestamps."""

    def __init__(self, sim: SimStation, clock: Clock) -> None:
        self.sim = sim
        self.clock = clock

    @property
    def memory(self) -> Any:
        return self.sim.memory

    async def call(self, payload: Any) -> Any:
        return await self.sim._call(payload)

    def tick(self, at: datetime) -> None:
        """Messages arrive when they are sent unless a test put the server clock later."""
        if at.year > 2000 and self.clock.now < at <= self.clock.now + timedelta(hours=4):
            self.clock.now = at

    # 1.6

    async def start16(self, tag: str, wh: int, at: datetime, connector: int = 1) -> Any:
        self.tick(at)
        return await self.call(call16.StartTransaction(
            connector_id=connector, id_tag=tag, meter_start=wh, timestamp=stamp(at)))

    async def meter16(
        self, tx: int, value: str | int, at: datetime, *, unit: str = "Wh", connector: int = 1
    ) -> Any:
        self.tick(at)
        return await self.call(call16.MeterValues(
            connector_id=connector, transaction_id=tx,
            meter_value=[{"timestamp": stamp(at), "sampled_value": [
                {"value": str(value), "measurand": "Energy.Active.Import.Register",
                 "unit": unit, "context": "Sample.Periodic"}]}]))

    async def stop16(
        self, tx: int, wh: int, at: datetime, *, reason: str = "Local", tag: str | None = None
    ) -> Any:
        self.tick(at)
        return await self.call(call16.StopTransaction(
            meter_stop=wh, timestamp=stamp(at), transaction_id=tx, reason=reason, id_tag=tag))

    async def status16(self, status: str, at: datetime, connector: int = 1) -> Any:
        self.tick(at)
        return await self.call(call16.StatusNotification(
            connector_id=connector, error_code="NoError", status=status, timestamp=stamp(at)))

    # 2.0.1

    async def event201(
        self, kind: str, seq: int, tx: str, at: datetime, *, wh: int | None = None,
        state: str | None = None, token: str | None = None, offline: bool = False,
        reason: str | None = None, trigger: str | None = None,
    ) -> Any:
        info: dict[str, Any] = {"transaction_id": tx}
        if state is not None:
            info["charging_state"] = state
        if reason is not None:
            info["stopped_reason"] = reason
        extra: dict[str, Any] = {}
        if wh is not None:
            extra["meter_value"] = [{"timestamp": stamp(at), "sampled_value": [
                {"value": wh, "measurand": "Energy.Active.Import.Register",
                 "unit_of_measure": {"unit": "Wh"}}]}]
        if token is not None:
            extra["id_token"] = {"id_token": token, "type": "ISO14443"}
        if kind == "Started":
            extra["evse"] = {"id": 1, "connector_id": 1}
        if offline:
            extra["offline"] = True
        default_trigger = {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                           "Ended": "StopAuthorized"}[kind]
        self.tick(at)
        return await self.call(call201.TransactionEvent(
            event_type=kind, timestamp=stamp(at), trigger_reason=trigger or default_trigger,
            seq_no=seq, transaction_info=info, **extra))

    def received(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.memory.received if name == action]


@dataclass
class Rig:
    engine: AsyncEngine
    bus: LocalBus
    server: OcppServer
    billing: BillingService
    clock: Clock
    boxes: list[Box] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ocpp"

    async def box(self, station_id: str = "WB-A-01", *, boot: bool = True) -> Box:
        protocol = "ocpp1.6" if station_id == "WB-A-01" else "ocpp2.0.1"
        sim = SimStation(self.url, station_id, protocol=protocol,
                         password=PASSWORDS.get(station_id))
        await sim.connect()
        box = Box(sim, self.clock)
        self.boxes.append(box)
        if boot:
            assert await sim.boot() == "Accepted"
        return box

    async def session(self, session_id: int) -> SessionView:
        async with session_factory(self.engine)() as db:
            row = await session_view(db, session_id)
            assert row is not None
            return row

    async def session_by_tx(self, station_id: str, tx: str) -> SessionView:
        async with session_factory(self.engine)() as db:
            rows = await session_views(db, sessions_query().where(
                ChargingSession.station_id == station_id,
                ChargingSession.station_tx_id == tx))
            assert rows, (station_id, tx)
            return rows[0]

    async def balance(self, account_id: str = "a-01") -> Decimal:
        async with session_factory(self.engine)() as db:
            return (await wallet_view(db, account_id, self.clock())).balance

    async def held(self, account_id: str = "a-01") -> Decimal:
        async with session_factory(self.engine)() as db:
            return (await wallet_view(db, account_id, self.clock())).holds

    async def settle_commands(self) -> None:
        await asyncio.sleep(0.05)
        await self.billing.drain()


async def wait_until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def make_rig(
    engine: AsyncEngine, *, document: dict[str, Any] | None = None,
    options: BillingOptions | None = None, node_id: str = "n1", hub: Any = None,
    server_options: ServerOptions | None = None, clock: Clock | None = None,
) -> Rig:
    clock = clock or Clock()
    await import_site(engine, document or demo_document())
    bus = LocalBus(node_id=node_id, hub=hub)
    await bus.start()
    billing = BillingService(session_factory(engine), clock=clock, commands=StationGateway(bus),
                             options=options or BillingOptions(sweep_interval_s=3600))
    server = OcppServer(
        engine=engine, bus=bus, clock=clock, heartbeat_interval_s=300,
        pending_retry_interval_s=60,
        options=server_options or _server_options(),
        authorizer=billing.authorize, session_hook=billing,
    )
    await server.start()
    return Rig(engine, bus, server, billing, clock)


def _server_options() -> ServerOptions:
    options: dict[str, Any] = {"port": 0, "limits": Limits(call_timeout_s=10)}
    # Local list pushes after boot are another issue's subject; they only add noise here.
    if "local_lists" in ServerOptions.__dataclass_fields__:
        options["local_lists"] = False
    return ServerOptions(**options)


async def close_rig(rig: Rig) -> None:
    for box in rig.boxes:
        await box.sim.close()
    await rig.billing.drain()
    await rig.server.stop()
    await rig.billing.stop()
    await rig.bus.stop()


@pytest.fixture
async def rig(engine: AsyncEngine) -> AsyncIterator[Rig]:
    """On each database backend."""
    running = await make_rig(engine)
    yield running
    await close_rig(running)


@pytest.fixture
async def lite(sqlite_engine: AsyncEngine) -> AsyncIterator[Rig]:
    """SQLite only, for tests whose subject is not storage."""
    running = await make_rig(sqlite_engine)
    yield running
    await close_rig(running)


class RawStation:
    """A websocket client without the ocpp library, to see the exact frames on the wire."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.calls: list[str] = []  # CALLs the server sent, as raw text (each answered)

    @classmethod
    async def open(cls, url: str, station_id: str, protocol: str) -> RawStation:
        token = base64.b64encode(f"{station_id}:{PASSWORDS[station_id]}".encode()).decode()
        connection = await connect(
            f"{url}/{station_id}", subprotocols=[protocol],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Basic {token}"}, ping_interval=None)
        return cls(connection)

    async def _read(self, timeout: float) -> str:
        text = str(await asyncio.wait_for(self.connection.recv(), timeout))
        frame = json.loads(text)
        if frame[0] == 2:
            self.calls.append(text)
            await self.connection.send(json.dumps([3, frame[1], _answer(frame[2])]))
        return text

    async def call(self, action: str, payload: dict[str, Any]) -> str:
        """Send a CALL and return the raw text of its CALLRESULT (or CALLERROR)."""
        unique = uuid.uuid4().hex
        await self.connection.send(json.dumps([2, unique, action, payload]))
        while True:
            text = await self._read(10)
            frame = json.loads(text)
            if frame[0] in (3, 4) and frame[1] == unique:
                return text

    async def next_call(self, action: str, timeout: float = 5.0) -> str:
        """The raw text of the first CALL with `action` not taken yet."""
        while True:
            for text in self.calls:
                if json.loads(text)[2] == action:
                    self.calls.remove(text)
                    return text
            await self._read(timeout)

    async def close(self) -> None:
        await self.connection.close()


def _answer(action: str) -> dict[str, Any]:
    if action in ("DataTransfer", "RemoteStopTransaction", "RequestStopTransaction"):
        return {"status": "Accepted"}
    return {}
