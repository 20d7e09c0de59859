"""The OCPP websocket server: `ws(s)://HOST:PORT/ocpp/{station_id}` (and `/{station_id}`).

The handshake is decided at the HTTP level before a websocket exists: the path names a station
of the inventory (or a site takes unknown stations), the station offers `ocpp1.6` or
`ocpp2.0.1`, and its credentials reach its security profile, which is a minimum:

* level 1: HTTP Basic auth, user = station id, password checked against the stored hash;
* level 2: the same over TLS;
* level 3: TLS with a client certificate that the configured CA signed, subject CN = station id.

The negotiated subprotocol picks the handler class (`v16.Station16` or `v201.Station201`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from csms.bus.errors import StationNotConnected
from csms.bus.interface import Bus, JsonObject
from csms.collector import FleetCount
from csms.db.engine import session_factory
from csms.ocpp.after_boot import AfterBootQueue, StationActivity
from csms.ocpp.authorizer import standing_authorizer
from csms.ocpp.clock import set_clock_after_boot
from csms.ocpp.commands import TYPED_OPS
from csms.ocpp.configuration import read_after_boot
from csms.ocpp.connection import (
    StationConnection,
    StationDisconnected,
    StationReplyInvalid,
)
from csms.ocpp.events import PROTOCOL_16, PROTOCOL_201, PROTOCOLS, BootStatus, StationRef
from csms.ocpp.local_lists import LocalLists
from csms.ocpp.login_guard import LoginGuard
from csms.ocpp.logins import StationLogins
from csms.ocpp.options import ServerOptions  # importable from here too (tests, benchmarks)
from csms.ocpp.service import Authorizer, SessionHook, StationService
from csms.ocpp.station_certificates import StationCertificates
from csms.ocpp.tls import options_from_settings
from csms.ocpp.v16 import Station16
from csms.ocpp.v201 import Station201
from csms.ocpp.wire import OcppCallError, StationCallError

log = structlog.get_logger("csms.ocpp.server")

Clock = Callable[[], datetime]
HANDLERS: dict[str, type[StationConnection]] = {PROTOCOL_16: Station16, PROTOCOL_201: Station201}
# OCPP 2.0.1 identity: up to 48 characters, no ':' (it separates Basic-auth user and password).
_STATION_ID = re.compile(r"^[A-Za-z0-9*\-_=+|@.]{1,48}$")
_PATH = re.compile(r"^/(?:ocpp/)?([^/?#]+)/?$")


@dataclass(slots=True)
class _Admission:
    station_id: str
    protocol: str
    ref: StationRef | None
    boot_status: BootStatus | None
    security_level: int
    transport: str
    register_site: str | None = None
    password_hash: str | None = None


class OcppServer:
    """The OCPP side of one node: `await start()`, `await stop()`; commands via `gateway`."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: Bus,
        clock: Clock,
        heartbeat_interval_s: int,
        pending_retry_interval_s: int,
        options: ServerOptions | None = None,
        authorizer: Authorizer = standing_authorizer,
        session_hook: SessionHook | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        self.bus = bus
        self.clock = clock
        self._sessions = session_factory(engine)
        self.service = StationService(
            session_factory(engine),
            clock=clock,
            heartbeat_interval_s=heartbeat_interval_s,
            pending_retry_interval_s=pending_retry_interval_s,
            node_id=bus.node_id,
            authorizer=authorizer,
            session_hook=session_hook,
            events=bus,
            # SQLite takes one writer at a time (BEGIN IMMEDIATE for every transaction); more
            # sessions in flight would only wait for the lock. PostgreSQL: 2 measured best on
            # the benchmark's 2 cores (mix p99 0.96 s; 1.6 s with 1, 1.9-3.3 s with 8): more
            # concurrent batches mostly wait for each other's row locks.
            db_concurrency=1 if engine.dialect.name == "sqlite" else 2,
            commit_window_s=self.options.commit_window_s,
            dialect=engine.dialect.name,
        )
        self._connections: dict[str, StationConnection] = {}
        self._admissions: dict[ServerConnection, _Admission] = {}
        self._servers: list[Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._departed = 0
        # After-boot work: one queue, bounded, behind station messages (csms.ocpp.after_boot).
        self.activity = StationActivity()
        self.local_lists = LocalLists(
            lambda: list(self._connections.values()),
            self.service,
            activity=self.activity,
            poll_s=self.options.local_list_poll_s,
            concurrency=self.options.after_boot_concurrency,
        )
        # Verified-login records: a station checked once skips scrypt, also after a restart.
        self.logins = StationLogins(self.service.batched, self.options.login_key,
                                    interval_s=self.options.login_hash_interval_s,
                                    activity=self.activity)
        self.after_boot = AfterBootQueue(
            self._after_boot, self.activity, concurrency=self.options.after_boot_concurrency
        )
        self._logins = LoginGuard(
            self.options.login_failures, self.options.login_window_s, self.options.login_lockout_s
        )
        self.port: int | None = None
        self.tls_port: int | None = None
        # Station certificates (SignCertificate), when the options name a station CA.
        self.certificates = (
            StationCertificates(session_factory(engine), self.options.station_ca, clock=clock,
                                days=self.options.station_cert_days)
            if self.options.station_ca is not None else None
        )

    @classmethod
    def from_settings(
        cls, settings: Any, engine: AsyncEngine, bus: Bus, clock: Clock, **kwargs: Any
    ) -> OcppServer:
        """Build from `csms.settings.Settings` (TLS files and ports when configured)."""
        return cls(
            engine=engine,
            bus=bus,
            clock=clock,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            pending_retry_interval_s=settings.pending_retry_interval_s,
            options=options_from_settings(settings),
            **kwargs,
        )

    # lifecycle

    async def start(self) -> None:
        self.bus.set_request_handler(self._bus_request)
        self.bus.on_station_lost(self._station_lost)
        common: dict[str, Any] = {
            "process_request": self._process_request,
            "select_subprotocol": self._select_subprotocol,
            "subprotocols": list(PROTOCOLS),
            "ping_interval": self.options.ping_interval_s,
            "ping_timeout": self.options.ping_timeout_s,
            "close_timeout": self.options.close_timeout_s,
            "open_timeout": self.options.open_timeout_s,
            "backlog": self.options.backlog,
            "max_size": self.options.max_frame_bytes,
            "max_queue": 16,
            "server_header": None,
            "compression": "deflate" if self.options.compression else None,
        }
        server = await serve(self._connection, self.options.host, self.options.port, **common)
        self._servers.append(server)
        self.port = _bound_port(server)
        if self.options.tls_port is not None and self.options.tls_context is not None:
            tls = await serve(
                self._connection,
                self.options.host,
                self.options.tls_port,
                ssl=self.options.tls_context,
                **common,
            )
            self._servers.append(tls)
            self.tls_port = _bound_port(tls)
        self._spawn(self._flush_loop(), "ocpp-last-seen")
        if self.options.local_lists:
            self._spawn(self.local_lists.watch(self.bus), "ocpp-local-lists")
        log.info("ocpp.listening", host=self.options.host, port=self.port, tls_port=self.tls_port)

    async def stop(self) -> None:
        for server in self._servers:
            server.close(close_connections=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.service.flush_last_seen()
        await self.logins.close()
        await self.after_boot.close()
        await self.local_lists.close()
        self.bus.set_request_handler(None)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.last_seen_flush_s)
            try:
                # Shielded: a cancel in the middle of a transaction would leave SQLite locked.
                await asyncio.shield(self.service.flush_last_seen())
            except Exception:
                log.warning("ocpp.flush_failed", exc_info=True)

    # what is connected here

    def connection(self, station_id: str) -> StationConnection | None:
        return self._connections.get(station_id)

    @property
    def connected_count(self) -> int:
        return len(self._connections)

    def fleet_count(self) -> FleetCount:
        """What the collector's freezer decides on (csms.collector)."""
        return FleetCount(
            connected=len(self._connections),
            departed=self._departed,
            settling=self.after_boot.pending > 0,
        )

    # handshake

    async def _process_request(
        self, websocket: ServerConnection, request: Request
    ) -> Response | None:
        response = await self._admit(websocket, request)
        if response is not None:
            _log_refusal(websocket, request, response)
        return response

    async def _admit(self, websocket: ServerConnection, request: Request) -> Response | None:
        """None to let the station in, else the HTTP answer refusing it (with the reason as its
        body, which `_log_refusal` logs)."""
        match = _PATH.match(request.path)
        station_id = unquote(match.group(1)) if match else ""
        if not _STATION_ID.match(station_id):
            return _reject(
                websocket, http.HTTPStatus.NOT_FOUND,
                "no such station endpoint: a station id is 1 to 48 of A-Z a-z 0-9 * - _ = + | @ .",
            )
        offered = _offered_subprotocols(request.headers)
        if not offered & set(PROTOCOLS):
            return _reject(
                websocket,
                http.HTTPStatus.BAD_REQUEST,
                "offer the websocket subprotocol ocpp1.6 or ocpp2.0.1",
            )
        ssl_object = websocket.transport.get_extra_info("ssl_object")
        transport = "wss" if ssl_object is not None else "ws"
        found = await self.service.station(station_id)
        register_site: str | None = None
        if found is None:
            register_site = await self.service.auto_register_site()
            if register_site is None:
                return _reject(websocket, http.HTTPStatus.NOT_FOUND, "unknown station")
            protocol = PROTOCOL_201 if PROTOCOL_201 in offered else PROTOCOL_16
            required, password_hash, record = 0, None, None
        else:
            protocol = found.ref.protocol
            if protocol not in offered:
                return _reject(
                    websocket,
                    http.HTTPStatus.BAD_REQUEST,
                    f"this station is configured for {protocol}; offer that subprotocol",
                )
            required, password_hash = found.security_profile, found.password_hash
            record = found.login_verifier

        level = 0
        if ssl_object is not None and _client_cert_names(ssl_object, station_id):
            level = 3
        credentials = _basic_credentials(request.headers)
        presented_hash: str | None = None
        if credentials is not None and found is not None:
            wait = self._logins.retry_after(station_id, time.monotonic())
            if wait is not None:
                return _too_many_attempts(websocket, wait)
        if credentials is not None:
            user, password = credentials
            if found is None:
                # Trust on first use: the installer approving the station confirms it.
                from csms.ocpp.security import hash_station_password

                presented_hash = await asyncio.to_thread(hash_station_password, password)
                level = max(level, 2 if ssl_object else 1)
            elif (
                user != station_id
                or (password_hash is None and record is None)
                or not await self.logins.check(station_id, password, password_hash, record)
            ):
                await self.service.record_security_event(
                    station_id, "csms", "InvalidChargingStationCredentials",
                    f"wrong Basic-auth credentials over {transport}",
                )
                if self._logins.failed(station_id, time.monotonic()):
                    log.warning("ocpp.station_login_locked", station_id=station_id,
                                seconds=self._logins.lockout_s)
                return _unauthorized(websocket, "wrong station credentials")
            else:
                self._logins.succeeded(station_id)
                level = max(level, 2 if ssl_object else 1)
        if level < required:
            await self.service.record_security_event(
                station_id, "csms", "SecurityProfileNotMet",
                f"connected at level {level} over {transport}; profile {required} required",
            )
            if required >= 2 and ssl_object is None:
                return _reject(
                    websocket, http.HTTPStatus.FORBIDDEN, "this station must connect over TLS"
                )
            return _unauthorized(websocket, "credentials required")

        if found is None:
            ref: StationRef | None = None
            boot_status = None
        else:
            ref = found.ref
            boot_status = _boot_status(found.boot_status)
        self._admissions[websocket] = _Admission(
            station_id=station_id,
            protocol=protocol,
            ref=ref,
            boot_status=boot_status,
            security_level=level,
            transport=transport,
            register_site=register_site,
            password_hash=presented_hash,
        )
        return None

    def _select_subprotocol(self, websocket: ServerConnection, offered: Any) -> Any:
        admission = self._admissions.get(websocket)
        return admission.protocol if admission is not None else None

    # a connection

    async def _connection(self, websocket: ServerConnection) -> None:
        admission = self._admissions.pop(websocket, None)
        if admission is None:
            await websocket.close(1011, "handshake state lost")
            return
        station_id = admission.station_id
        ref = admission.ref
        if ref is None:
            assert admission.register_site is not None
            registered = await self.service.register_unknown(
                station_id,
                admission.register_site,
                protocol=admission.protocol,
                security_profile=admission.security_level,
                password_hash=admission.password_hash,
            )
            found = await self.service.station(station_id) if registered is not None else None
            if found is None:
                await websocket.close(1008, "cannot register this station")
                return
            ref = found.ref
        handler_class = HANDLERS[admission.protocol]
        conn = handler_class(
            websocket,
            ref,
            self.service,
            limits=self.options.limits,
            boot_status=admission.boot_status,
            security_level=admission.security_level,
        )
        conn.after_boot = self.after_boot.submit
        conn.activity = self.activity
        conn.certificates = self.certificates
        previous = self._connections.get(station_id)
        self._connections[station_id] = conn
        if previous is not None:
            log.info("ocpp.connection_replaced", station_id=station_id)
            self._spawn(previous.close(1000, "replaced by a newer connection"), "close-old")
        try:
            await self.bus.claim(station_id)
            await self.service.connected(
                ref, transport=admission.transport, security_level=admission.security_level
            )
            log.info(
                "ocpp.connected",
                station_id=station_id,
                protocol=admission.protocol,
                transport=admission.transport,
                level=admission.security_level,
            )
            await conn.run()
        finally:
            if self._connections.get(station_id) is conn:
                del self._connections[station_id]
                self._departed += 1
                with contextlib.suppress(Exception):
                    await self.bus.release(station_id)
                with contextlib.suppress(Exception):
                    await self.service.disconnected(station_id)
            log.info(
                "ocpp.disconnected",
                station_id=station_id,
                code=websocket.close_code,
                reason=websocket.close_reason,
            )

    async def _station_lost(self, station_id: str, new_node: str | None) -> None:
        """Another node took the station (a newer connection there): close ours."""
        conn = self._connections.pop(station_id, None)
        if conn is not None:
            self._departed += 1
            log.info("ocpp.station_moved", station_id=station_id, node=new_node)
            await conn.close(1000, "replaced by a newer connection")

    async def _after_boot(self, conn: StationConnection) -> None:
        configuration = None
        if self.options.read_configuration:
            try:
                configuration = await read_after_boot(conn)
            except (TimeoutError, StationReplyInvalid) as error:
                # The local list still matters more than the configuration: go on.
                log.warning("ocpp.configuration_read_failed", station_id=conn.station_id,
                            error=str(error))
        elif self.options.set_clock:
            configuration = (await self.service.known_configuration(conn.station_id)).settings
        if self.options.set_clock and configuration:
            try:
                await set_clock_after_boot(
                    conn, configuration, ZoneInfo(conn.station.timezone), self.clock()
                )
            except (TimeoutError, StationReplyInvalid, StationCallError) as error:
                log.warning("ocpp.clock_failed", station_id=conn.station_id, error=str(error))
        if self.options.local_lists:
            await self.local_lists.after_boot(conn, self.service)
        await self._fallback_limit(conn)
        if conn.protocol == PROTOCOL_201:
            await self._master_pass_group(conn)

    async def _master_pass_group(self, conn: StationConnection) -> None:
        """2.0.1 C_47-C_49: a site with a master pass tells its stations the group whose
        badges may stop any transaction (AuthCtrlr.MasterPassGroupId), as answers name it."""
        from csms.inventory.models import Site
        from rfid.authorisation import group_token
        from wallet.accounts import account_by_ref

        async with self._sessions() as session:
            site = await session.get(Site, conn.station.site_id)
            master = site.master_pass_account if site is not None else None
            account = (await account_by_ref(session, site.id, master)
                       if site is not None and master is not None else None)
        if account is None:
            return
        try:
            answer = await conn.call("SetVariables", {"setVariableData": [{
                "component": {"name": "AuthCtrlr"},
                "variable": {"name": "MasterPassGroupId"},
                "attributeValue": group_token(account.id, 36)}]})
            status = answer["setVariableResult"][0]["attributeStatus"]
        except (TimeoutError, StationReplyInvalid, StationCallError, KeyError) as error:
            status = f"failed: {error}"
        log.info("ocpp.master_pass_group", station_id=conn.station_id, status=status)

    async def _fallback_limit(self, conn: StationConnection) -> None:
        """On a site with load management: the station's own static maximum, which holds
        when Volthaus or the building meter cannot be reached."""
        from csms.load.settings import fallback_of

        async with self._sessions() as session:
            fallback = await fallback_of(session, conn.station.site_id)
        if fallback is None:
            return
        limit_a, phases = fallback
        max_w = conn.station.max_power_w
        max_a = int(max_w // (230 * 3)) if max_w else 32
        try:
            accepted = await conn.set_fallback_limit(limit_a, phases, max_a)
        except (TimeoutError, StationReplyInvalid, StationCallError) as error:
            accepted = False
            log.warning("load.fallback_failed", station_id=conn.station_id, error=str(error))
        log.info("load.fallback_profile", station_id=conn.station_id, limit_a=limit_a,
                 accepted=accepted)

    # commands arriving over the bus for stations held here

    async def _bus_request(self, station_id: str, request: JsonObject) -> JsonObject:
        conn = self._connections.get(station_id)
        if conn is None or conn.closed:
            raise StationNotConnected(station_id, "not held by this node")
        op = request.get("op")
        try:
            if op == "call":
                result = await conn.call(str(request["action"]), dict(request["payload"]))
                return {"result": result}
            if op in TYPED_OPS:
                args = dict(request.get("args") or {})
                method = getattr(conn, str(op))
                return {"result": {"value": await method(**args)}}
        except StationCallError as error:
            return {
                "call_error": {
                    "code": error.reply.code,
                    "description": error.reply.description,
                    "details": error.reply.details,
                }
            }
        except StationReplyInvalid as error:
            return {"invalid_reply": error.problems}
        except StationDisconnected as error:
            raise StationNotConnected(station_id, "it disconnected before answering") from error
        except OcppCallError as error:
            raise ValueError(error.description) from error
        raise ValueError(f"unknown request op {op!r}")


def _bound_port(server: Server) -> int:
    for sock in server.sockets:
        port: int = sock.getsockname()[1]
        return port
    raise RuntimeError("server has no socket")


def _boot_status(value: str | None) -> BootStatus | None:
    try:
        return BootStatus(value) if value else None
    except ValueError:
        return None


def _offered_subprotocols(headers: Headers) -> set[str]:
    offered: set[str] = set()
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        offered.update(part.strip() for part in value.split(",") if part.strip())
    return offered


def _basic_credentials(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _client_cert_names(ssl_object: ssl.SSLObject, station_id: str) -> bool:
    """True if the TLS peer presented a CA-verified certificate whose CN is the station id."""
    cert = ssl_object.getpeercert()
    if not cert:
        return False
    subject: Any = cert.get("subject", ())
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName" and value == station_id:
                return True
    return False


_LOGGED_ID_CHARS = 64


def _log_refusal(websocket: ServerConnection, request: Request, response: Response) -> None:
    """One WARNING line per refused handshake: the station id as asked for (cut short when it
    is over-long), the status and the reason sent, and the peer. Never a password."""
    match = _PATH.match(request.path)
    asked = unquote(match.group(1)) if match else request.path
    fields: dict[str, Any] = {
        "station_id": asked[:_LOGGED_ID_CHARS],
        "status": response.status_code,
        "reason": response.body.decode("utf-8", "replace").strip(),
        "subprotocols": sorted(_offered_subprotocols(request.headers)),
    }
    if len(asked) > _LOGGED_ID_CHARS:
        fields["station_id_length"] = len(asked)
    peer = websocket.remote_address
    if peer:
        fields["peer"] = str(peer[0])
    log.warning("ocpp.handshake_refused", **fields)


def _reject(websocket: ServerConnection, status: http.HTTPStatus, text: str) -> Response:
    return websocket.respond(status, text + "\n")


def _too_many_attempts(websocket: ServerConnection, wait_s: float) -> Response:
    response = websocket.respond(
        http.HTTPStatus.TOO_MANY_REQUESTS,
        "too many wrong passwords for this station; try again later\n",
    )
    response.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
    return response


def _unauthorized(websocket: ServerConnection, text: str) -> Response:
    response = websocket.respond(http.HTTPStatus.UNAUTHORIZED, text + "\n")
    response.headers["WWW-Authenticate"] = 'Basic realm="Volthaus OCPP", charset="UTF-8"'
    return response


@contextlib.asynccontextmanager
async def serve_ocpp(
    settings: Any, engine: AsyncEngine, bus: Bus, *, clock: Clock, **kwargs: Any
) -> AsyncIterator[OcppServer]:
    """For the composition root: the OCPP server listening for the block (ports on `.port` and
    `.tls_port`; `authorizer=` / `session_hook=` pass through to `OcppServer`)."""
    server = OcppServer.from_settings(settings, engine, bus, clock, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
