"""The composition root: one process, one event loop, HTTP and OCPP side by side.

`running_node(settings)` builds everything from settings (database, migrations, bus, app) and
yields a `RunningNode` with the bound ports; `volthaus serve` and the end-to-end tests both use
it, so what the tests run is what production runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import structlog
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from amenities.drivers.pool import DriverPool
from amenities.laundry import LaundryService, pool_devices
from billing import PaidUseFlow
from csms.api.app import build_app
from csms.auth.tokens import create_token, has_admin_token
from csms.bus import Bus, open_bus
from csms.charging.sessions import BillingService
from csms.collector import tuned_collector
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.duty import Duties, Loop
from csms.inventory.tariffs import tariff_document
from csms.load.controller import LoadController
from csms.ocpp.commands import StationGateway
from csms.ocpp.server import OcppServer
from csms.settings import Settings
from csms.wallet_jobs import wallet_jobs
from meters.on_gateway import meter_on_gateway
from meters.poller import MeterPoller
from meters.supply_billing import SupplyBilling
from meters.supply_control import SupplyControl

log = structlog.get_logger("csms.serve")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the node decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class RunningNode:
    settings: Settings
    engine: AsyncEngine
    bus: Bus
    ocpp: OcppServer
    app: FastAPI
    http_port: int
    ocpp_port: int
    first_admin_token: str | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.http_port}"

    @property
    def ocpp_url(self) -> str:
        return f"ws://{self.settings.host}:{self.ocpp_port}/ocpp"


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say
    # they are TCP, and without it every answer on a kept-alive connection waited ~40 ms for
    # the client's delayed ACK (Nagle), in browsers and API clients alike.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def open_database(settings: Settings) -> AsyncEngine:
    """The engine for the configured database, migrated to the newest schema."""
    engine = create_engine(settings.database_url)
    await upgrade_database(engine)
    return engine


async def ensure_admin_token(engine: AsyncEngine, clock: Clock) -> str | None:
    """On first start (no admin token yet) mint one and return it; otherwise None."""
    async with session_factory(engine)() as session:
        if await has_admin_token(session):
            return None
        token = await create_token(session, role="admin", now=clock(), label="first start")
        await session.commit()
        return token


@contextlib.asynccontextmanager
async def running_node(
    settings: Settings,
    *,
    site_file: Path | None = None,
    clock: Clock = system_clock,
) -> AsyncIterator[RunningNode]:
    log.info("database", url=settings.database_shown)
    engine = await open_database(settings)
    try:
        if site_file is not None:
            from csms.inventory.sitefile import import_site_file_if_new

            await import_site_file_if_new(
                engine, site_file, login_key=settings.station_login_key()
            )
        first_token = await ensure_admin_token(engine, clock)
        node_id = settings.node_id or f"node-{uuid.uuid4().hex[:8]}"
        async with (
            open_bus(settings.redis_url, node_id=node_id,
                     namespace=settings.redis_namespace) as bus,
            _serving(settings, engine, bus, clock, first_token) as node,
        ):
            yield node
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _serving(
    settings: Settings, engine: AsyncEngine, bus: Bus, clock: Clock, first_token: str | None
) -> AsyncIterator[RunningNode]:
    """HTTP (and OCPP) listening on the bound ports until the context exits."""
    # The one paid-use flow of this node; charging plugs in now, laundry and meters later.
    flow = PaidUseFlow(session_factory(engine), clock=clock)
    billing = BillingService(
        session_factory(engine), clock=clock, commands=StationGateway(bus), flow=flow
    )
    ocpp = OcppServer.from_settings(
        settings, engine, bus, clock, authorizer=billing.authorize, session_hook=billing
    )
    # One owner per device address (Shelly clients, Modbus gateways) for machines and meters.
    drivers = DriverPool(meter_of=meter_on_gateway)
    laundry = LaundryService(flow, pool_devices(drivers), tariff_document)
    supply = SupplyBilling(flow, tariff_document)
    poller = MeterPoller(session_factory(engine), drivers.gateways, clock=clock,
                         on_reading=supply.on_stored)
    control = SupplyControl(session_factory(engine), drivers.relay, clock=clock)
    app = build_app(settings, engine, bus=bus, clock=clock, ocpp=ocpp, billing=billing,
                    laundry=laundry, meter_poller=poller, supply_control=control)
    await ocpp.start()
    load = LoadController(session_factory(engine), StationGateway(bus),
                          lambda block: meter_on_gateway(drivers.gateways, block),
                          clock=clock, bus=bus)
    app.state.load = load
    app.state.drivers = drivers  # the installer's live test read of a meter
    # Device loops run on one node at a time (the lease holder); see csms/duty.py.
    loops: dict[str, Loop] = {
        "laundry": laundry.run, "meter-poller": poller.run, "supply-control": control.run,
        "load": load.run}
    if ocpp.certificates is not None:
        # Asking stations for new CSRs before their certificates end: one node is enough.
        loops["station-certificates"] = partial(
            ocpp.certificates.renewal_loop, StationGateway(bus),
            timedelta(days=settings.station_cert_renew_days))
    duties = Duties(bus, loops, lease_s=settings.duty_lease_s)
    app.state.duties = duties
    ocpp_stopped = False
    tasks = [
        asyncio.create_task(billing.run(bus), name="charging-sweep"),
        asyncio.create_task(duties.run(), name="duties"),
    ]
    try:
        http_socket = _bind(settings.host, settings.http_port)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        http = _EmbeddedServer(config)
        http_task = asyncio.create_task(http.serve(sockets=[http_socket]), name="http")
        while not http.started:
            if http_task.done():
                http_task.result()
            await asyncio.sleep(0.01)
        node = RunningNode(
            settings=settings,
            engine=engine,
            bus=bus,
            ocpp=ocpp,
            app=app,
            http_port=http_socket.getsockname()[1],
            ocpp_port=ocpp.port or settings.ocpp_port,
            first_admin_token=first_token,
        )
        log.info("http_listening", url=node.http_url)
        try:
            async with wallet_jobs(settings, engine, clock):
                app.state.ready = True
                yield node
        finally:
            # Drain: not ready (the proxy stops sending), device loops handed to another node,
            # stations told to go (close 1001 once their in-flight message is answered and its
            # transaction committed), then HTTP.
            app.state.ready = False
            await duties.release()
            await ocpp.stop()
            ocpp_stopped = True
            http.should_exit = True
            await http_task
            http_socket.close()
            node.stopped.set()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not ocpp_stopped:
            await ocpp.stop()
        await billing.stop()
        await drivers.close()


async def serve_until_signalled(
    settings: Settings, *, site_file: Path | None = None, emulate_devices: bool = False
) -> None:
    """`volthaus serve`: run until SIGINT or SIGTERM, then stop cleanly. `emulate_devices`
    (the demo) first starts an emulator for every device the site file puts on 127.0.0.1."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        if emulate_devices and site_file is not None:
            import yaml

            from csms.simulator.demo_site import demo_devices

            document = yaml.safe_load(site_file.read_text(encoding="utf-8"))
            devices = await stack.enter_async_context(demo_devices(document))
            for line in devices.describe():
                log.info("emulated_device", device=line)
        await _serve(settings, site_file, stop, demo=emulate_devices)


async def _print_demo_people(node: RunningNode, site_file: Path) -> None:
    """On the demo's first start: its people and their passwords, printed once."""
    import yaml

    from csms.simulator.demo_users import ensure_demo_users

    document = yaml.safe_load(site_file.read_text(encoding="utf-8")) or {}
    site_id = document.get("site", {}).get("id")
    if not site_id:
        return
    people = await ensure_demo_users(node.engine, str(site_id), system_clock())
    if people:
        lines = "\n".join(f"  {role:<10} {email:<36} {password}"
                          for role, email, password in people)
        print(f"\nSign in at {node.http_url}/ (shown once):\n{lines}\n", flush=True)


async def _serve(
    settings: Settings, site_file: Path | None, stop: asyncio.Event, *, demo: bool = False
) -> None:
    async with running_node(settings, site_file=site_file) as node:
        if node.first_admin_token:
            # Printed once, plainly, so the person starting the demo can copy it.
            print(f"\nAdmin API token (shown once): {node.first_admin_token}\n", flush=True)
        if demo and site_file is not None:
            await _print_demo_people(node, site_file)
        # Started: what startup allocated lives as long as the process (csms/collector.py),
        # and what a fleet brings is frozen once it has settled.
        async with tuned_collector(node.ocpp.fleet_count):
            log.info("ready", http=node.http_url, ocpp=node.ocpp_url,
                     docs=f"{node.http_url}/docs")
            await stop.wait()
        log.info("stopping")
    log.info("stopped")
