"""The version-neutral station service: every station message, parsed, lands here.

It stores what stations report, decides boots and authorisations, and hands transaction events
to a `SessionHook` (billing plugs in there). It knows nothing of OCPP versions or websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Site, Station
from csms.ocpp.admin import StationNotFound, approve_station
from csms.ocpp.batch_reads import badge_read, reservations_read
from csms.ocpp.configuration import Setting
from csms.ocpp.events import (
    AuthDecision,
    BootDecision,
    BootInfo,
    BootStatus,
    IdToken,
    SecurityEventReport,
    StationRef,
    StatusReport,
    TransactionAnswer,
    TransactionEvent,
)
from csms.ocpp.group_commit import BatchRead, GroupCommit
from csms.ocpp.models import OcppStation
from csms.ocpp.reservation_book import reservation_gate
from csms.ocpp.reservations import refused
from csms.ocpp.rows import (
    STATION,
    StationRows,
    execute,
)
from csms.ocpp.transactions import StationTransactions

Clock = Callable[[], datetime]
T = TypeVar("T")
LAST_SEEN_CHUNK = 250

log = structlog.get_logger("csms.ocpp.service")


class Authorizer(Protocol):
    """Decides whether an idTag may charge at a station (rfid implements the real one)."""

    async def __call__(
        self, session: AsyncSession, station: StationRef, token: IdToken, now: datetime,
        *, starts: bool = False,
    ) -> AuthDecision: ...
    # `starts`: the token starts a transaction (1.6 StartTransaction, a 2.0.1 transaction's
    # first token), not only asks (Authorize) or stops: a master-pass badge may do the latter.


class SessionHook(Protocol):
    """Where charging billing plugs in (issue 7).

    Called in the station's message order, after the message is stored and before the station
    gets its answer; `event.message_key` is stable across retransmissions (use it as the cause
    of any money movement). A returned answer's decision replaces the idTagInfo / idTokenInfo
    the station receives (e.g. `Blocked` when the wallet cannot cover a hold; None keeps the
    authorizer's) and its total cost is the 2.0.1 `totalCost`. An exception answers the station
    with InternalError (an `OcppCallError` with its kind), so it retransmits later.
    """

    async def transaction_event(self, event: TransactionEvent) -> TransactionAnswer | None: ...


class EventSink(Protocol):
    """Live events for web pages (the bus's `publish`)."""

    async def publish(self, topic: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class StationAdmission:
    """What the handshake reads of an inventory station."""

    ref: StationRef
    security_profile: int
    password_hash: str | None
    # The verified-login record (csms.ocpp.logins).
    login_verifier: str | None
    # The last boot answer (None: never booted).
    boot_status: str | None


@dataclass(frozen=True, slots=True)
class KnownConfiguration:
    # `Setting.as_json()` per key (see csms.ocpp.configuration); None: never read.
    settings: dict[str, Any] | None
    read_for_firmware: str | None
    # The firmware the station reported at its last boot.
    firmware: str | None


class StationService:
    """One per node; shared by every connection on it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        heartbeat_interval_s: int,
        pending_retry_interval_s: int,
        node_id: str,
        authorizer: Authorizer,
        # The database's dialect name ("sqlite", "postgresql"): the upserts differ.
        dialect: str,
        session_hook: SessionHook | None = None,
        events: EventSink | None = None,
        db_concurrency: int = 8,
        commit_window_s: float = 0.0,
    ) -> None:
        self._sessions = sessions
        self.clock = clock
        self.heartbeat_interval_s = heartbeat_interval_s
        self.pending_retry_interval_s = pending_retry_interval_s
        self.node_id = node_id
        self.authorizer = authorizer
        self.session_hook = session_hook
        self._events = events
        # Thousands of stations booting at once must queue here, not time out in the pool.
        self._db_slots = asyncio.Semaphore(db_concurrency)
        # The small per-message reads and writes of all stations share transactions.
        self._group = GroupCommit(self.session, workers=db_concurrency, window_s=commit_window_s)
        self.rows = StationRows.for_dialect(dialect)
        self._last_seen: dict[str, datetime] = {}
        # Transaction messages (meter values, starts, stops, TransactionEvent).
        self.transactions = StationTransactions(self)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._db_slots, self._sessions() as session:
            yield session

    async def batched(
        self, op: Callable[[AsyncSession], Awaitable[T]], reads: Sequence[BatchRead] = ()
    ) -> T:
        """Run `op` (database work only, no commit of its own) in a shared transaction; returns
        after that transaction committed. `reads`: what `op` reads that its batch reads ahead
        for all its operations at once (see `csms.ocpp.group_commit`)."""
        return await self._group.run(op, reads)

    async def write(self, statement: Any, row: dict[str, Any]) -> None:
        """Write one row with a `rows.StationRows` statement in a shared transaction (committed
        when this returns)."""
        await self._group.write(statement, row)

    async def announce(self, station_id: str, kind: str, data: dict[str, Any]) -> None:
        """A live event `station.<id>.<kind>` (pages, load management); never fails."""
        await self._publish(station_id, kind, data)

    async def _publish(self, station_id: str, kind: str, data: dict[str, Any]) -> None:
        if self._events is None:
            return
        try:
            await self._events.publish(f"station.{station_id}.{kind}", data)
        except Exception:
            # Live pages are a convenience; a bus hiccup must not fail a station's message.
            log.warning("ocpp.publish_failed", station_id=station_id, kind=kind, exc_info=True)

    # inventory

    async def station(self, station_id: str) -> StationAdmission | None:
        """What the handshake needs to know of a station (None: not in the inventory)."""
        inventory = Station.__table__  # type: ignore[attr-defined]
        sites = Site.__table__  # type: ignore[attr-defined]
        query = (
            core_select(
                inventory.c.id, inventory.c.site_id, inventory.c.protocol,
                inventory.c.idtag_format, inventory.c.tariff_id, inventory.c.connectors,
                inventory.c.security_profile, inventory.c.password_hash,
                inventory.c.login_verifier,
                inventory.c.building_id, inventory.c.max_power_w, STATION.c.boot_status,
                sites.c.timezone, sites.c.max_uses_per_badge, sites.c.master_pass_account,
            )
            .select_from(
                inventory.join(sites, sites.c.id == inventory.c.site_id)
                .outerjoin(STATION, STATION.c.station_id == inventory.c.id)
            )
            .where(inventory.c.id == station_id)
        )

        async def read(session: AsyncSession) -> StationAdmission | None:
            row = (await execute(session, query)).first()
            if row is None:
                return None
            return StationAdmission(
                ref=StationRef(
                    station_id=row.id, site_id=row.site_id, protocol=row.protocol,
                    idtag_format=row.idtag_format, tariff_id=row.tariff_id,
                    connectors=row.connectors, timezone=row.timezone,
                    building_id=row.building_id, max_power_w=row.max_power_w,
                    max_uses_per_badge=row.max_uses_per_badge,
                    master_pass_account=row.master_pass_account,
                ),
                security_profile=row.security_profile,
                password_hash=row.password_hash,
                login_verifier=row.login_verifier,
                boot_status=row.boot_status,
            )

        return await self.batched(read)

    async def auto_register_site(self) -> str | None:
        """The one site that takes unknown stations, if exactly one does."""
        async with self.session() as session:
            sites = (
                await session.exec(select(Site.id).where(col(Site.auto_register_stations)))
            ).all()
        return sites[0] if len(sites) == 1 else None

    async def register_unknown(
        self,
        station_id: str,
        site_id: str,
        *,
        protocol: str,
        security_profile: int,
        password_hash: str | None,
    ) -> Station | None:
        """Create a station that booted unknown, waiting for an installer (pending_approval)."""
        async with self.session() as session:
            existing = await session.get(Station, station_id)
            if existing is not None:
                return existing
            # No tariff until an installer approves it with one: a station never bills with a
            # price nobody chose for it.
            station = Station(
                id=station_id,
                site_id=site_id,
                protocol=protocol,
                security_profile=security_profile,
                password_hash=password_hash,
                connectors=1,
                tariff_id=None,
                pending_approval=True,
                created_at=self.clock(),
            )
            session.add(station)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return await session.get(Station, station_id)
            log.info("ocpp.station_auto_registered", station_id=station_id, site_id=site_id)
            return station

    # connection

    async def _state(self, session: AsyncSession, station_id: str) -> OcppStation:
        state = await session.get(OcppStation, station_id)
        if state is None:
            state = OcppStation(station_id=station_id)
            session.add(state)
        return state

    async def connected(self, station: StationRef, *, transport: str, security_level: int) -> None:
        now = self.clock()
        await self.write(self.rows.connected, {
            "station_id": station.station_id, "connected": True, "protocol": station.protocol,
            "node_id": self.node_id, "transport": transport, "security_level": security_level,
            "connected_at": now, "last_seen_at": now,
        })
        self._last_seen[station.station_id] = now
        await self._publish(station.station_id, "connection", {"connected": True})

    async def disconnected(self, station_id: str) -> None:
        now = self.clock()
        self._last_seen.pop(station_id, None)

        await self.write(
            self.rows.disconnected,
            {"b_station_id": station_id, "b_node_id": self.node_id, "b_at": now},
        )
        await self._publish(station_id, "connection", {"connected": False})

    def seen(self, station_id: str) -> None:
        """Heartbeats and other traffic: kept in memory, written by `flush_last_seen`."""
        self._last_seen[station_id] = self.clock()

    async def flush_last_seen(self) -> int:
        seen = dict(self._last_seen)
        if not seen:
            return 0

        rows = [{"b_station_id": station_id, "b_at": moment}
                for station_id, moment in sorted(seen.items())]
        # In transactions of a few hundred rows, one after the other: one transaction for
        # thousands of rows would hold their row locks (PostgreSQL) or the loop (SQLite) long
        # enough for the stations' own messages to notice.
        for first in range(0, len(rows), LAST_SEEN_CHUNK):
            await self.batched(
                partial(execute, statement=self.rows.last_seen,
                        params=rows[first : first + LAST_SEEN_CHUNK])
            )
        return len(seen)

    # boot

    async def boot(self, station: StationRef, info: BootInfo) -> tuple[BootDecision, bool]:
        """The answer to a boot, and whether the server may send its own follow-up."""
        now = self.clock()

        inventory = Station.__table__  # type: ignore[attr-defined]
        query = (
            core_select(inventory.c.pending_approval, inventory.c.boot_pending,
                        STATION.c.send_after_boot)
            .select_from(inventory.outerjoin(STATION, STATION.c.station_id == inventory.c.id))
            .where(inventory.c.id == station.station_id)
        )

        async def write(session: AsyncSession) -> tuple[BootStatus, bool]:
            row = (await execute(session, query)).first()
            if row is None:
                status = BootStatus.REJECTED
            elif row.pending_approval or row.boot_pending:
                status = BootStatus.PENDING
            else:
                status = BootStatus.ACCEPTED
            await execute(session, self.rows.boot, {
                "station_id": station.station_id, "boot_count": 1, "boot_status": status.value,
                "last_boot_at": now, "vendor": info.vendor, "model": info.model,
                "serial_number": info.serial_number, "firmware_version": info.firmware_version,
                "boot_payload": info.payload,
            })
            send = row is None or row.send_after_boot is None or bool(row.send_after_boot)
            return status, send

        status, send_after_boot = await self.batched(write)
        interval = (
            self.heartbeat_interval_s
            if status is BootStatus.ACCEPTED
            else self.pending_retry_interval_s
        )
        log.info(
            "ocpp.boot", station_id=station.station_id, status=status.value, vendor=info.vendor
        )
        await self._publish(station.station_id, "boot", {"status": status.value})
        return BootDecision(status, interval), send_after_boot

    async def approve(self, station_id: str, tariff_id: str | None = None) -> bool:
        """An installer accepts an auto-registered station with its tariff; it is accepted at
        its next boot. False for an unknown station; ApprovalError without a tariff."""
        async with self.session() as session:
            try:
                await approve_station(session, station_id, tariff_id)
            except StationNotFound:
                return False
            await session.commit()
        return True

    async def set_send_after_boot(self, station_id: str, enabled: bool) -> None:
        await self.write(
            self.rows.send_after_boot, {"station_id": station_id, "send_after_boot": enabled}
        )

    async def set_local_list_version(self, station_id: str, version: int | None) -> None:
        await self.write(
            self.rows.local_list_version,
            {"station_id": station_id, "local_list_version": version},
        )

    async def known_configuration(self, station_id: str) -> KnownConfiguration:
        """What the server knows of the station's configuration, and under which firmware."""
        query = core_select(
            STATION.c.configuration, STATION.c.configuration_firmware, STATION.c.firmware_version
        ).where(STATION.c.station_id == station_id)

        async def read(session: AsyncSession) -> KnownConfiguration:
            row = (await execute(session, query)).first()
            if row is None:
                return KnownConfiguration(None, None, None)
            settings = row.configuration
            return KnownConfiguration(
                dict(settings) if isinstance(settings, dict) else None,
                row.configuration_firmware,
                row.firmware_version,
            )

        return await self.batched(read)

    async def store_configuration(
        self,
        station_id: str,
        settings: Mapping[str, Setting],
        *,
        replace: bool,
        firmware: str | None = None,
        mark_read: bool = False,
    ) -> None:
        """Replace what is known (a read after boot, under `firmware`) or merge into it;
        `mark_read`: count as read under `firmware` all the same (the station refused)."""
        now = self.clock()

        async def write(session: AsyncSession) -> None:
            state = await self._state(session, station_id)
            merged = {} if replace else dict(state.configuration or {})
            merged.update({key: value.as_json() for key, value in settings.items()})
            state.configuration = merged
            if replace or mark_read:
                state.configuration_read_at = now
                state.configuration_firmware = firmware

        await self.batched(write)

    async def set_password_hash(self, station_id: str, password_hash: str) -> None:
        async with self.session() as session:
            row = await session.get(Station, station_id)
            if row is not None:
                row.password_hash = password_hash
                await session.commit()

    # status

    async def status(self, station: StationRef, report: StatusReport, *, max_ids: int) -> bool:
        """Store a status; False (and nothing stored) for ids beyond the cap."""
        self.seen(station.station_id)
        if report.evse_id > max_ids or report.connector_id > max_ids:
            log.warning(
                "ocpp.status_capped",
                station_id=station.station_id,
                evse_id=report.evse_id,
                connector_id=report.connector_id,
            )
            return False
        now = self.clock()

        row = {
            "station_id": station.station_id, "evse_id": report.evse_id,
            "connector_id": report.connector_id, "status": report.status,
            "error_code": report.error_code, "info": report.info,
            "timestamp": report.timestamp, "received_at": now,
        }
        # Both rows in the same shared transaction: the history and the current status agree.
        await asyncio.gather(
            self.write(self.rows.status_current, row), self.write(self.rows.status_event, row)
        )
        await self._publish(
            station.station_id,
            "status",
            {"evse_id": report.evse_id, "connector_id": report.connector_id,
             "status": report.status},
        )
        return True

    # authorisation

    async def authorize(self, station: StationRef, token: IdToken) -> AuthDecision:
        now = self.clock()

        async def decide(session: AsyncSession) -> AuthDecision:
            decision = await self.authorizer(session, station, token, now)
            # Reservations: refused when every connector here is held for somebody else.
            blocking = await reservation_gate(
                session, station, connector=None, token=token, decision=decision, now=now
            )
            return refused(decision, blocking)

        reads = (badge_read(station, token), reservations_read(station, now))
        decision = await self.batched(decide, reads)
        self.log_authorize(station, token, decision)
        return decision

    def log_authorize(self, station: StationRef, token: IdToken, decision: AuthDecision) -> None:
        log.info(
            "ocpp.authorize",
            station_id=station.station_id,
            id_tag=token.value,
            status=decision.status.value,
            account_id=decision.account_id,
        )

    # everything else

    async def security_event(self, station: StationRef, report: SecurityEventReport) -> None:
        await self.record_security_event(
            station.station_id, "station", report.type, report.tech_info, report.timestamp
        )

    async def record_security_event(
        self,
        station_id: str,
        source: str,
        type_: str,
        tech_info: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        now = self.clock()

        await self.write(self.rows.security_event, {
            "station_id": station_id[:64], "source": source, "type": type_[:64],
            "tech_info": tech_info[:255] if tech_info else None,
            "timestamp": timestamp or now, "received_at": now,
        })
        log.warning("ocpp.security_event", station_id=station_id, source=source, type=type_)

    async def record_charging_need(self, station: StationRef, payload: dict[str, Any]) -> None:
        """A car's needs (2.0.1): stored per EVSE, and announced so load management weighs
        them at once."""
        from csms.load.needs import charging_need_of

        need = charging_need_of(station.station_id, payload, self.clock())
        async with self._sessions() as session:
            await session.merge(need)
            await session.commit()
        await self._publish(station.station_id, "charging_need", {
            "evse_id": need.evse_id, "site_id": station.site_id})

    async def store_message(
        self, station: StationRef, action: str, payload: dict[str, Any]
    ) -> None:
        self.seen(station.station_id)
        now = self.clock()

        row = {
            "station_id": station.station_id, "action": action, "payload": payload,
            "received_at": now,
        }
        if not action.endswith("FirmwareStatusNotification"):
            await self.write(self.rows.station_message, row)
            return

        async def write(session: AsyncSession) -> None:
            state = await self._state(session, station.station_id)
            state.firmware_status = str(payload.get("status"))[:64]
            await execute(session, self.rows.station_message, row)

        await self.batched(write)
