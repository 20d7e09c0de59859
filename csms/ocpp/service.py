"""The version-neutral station service: every station message, parsed, lands here.

It stores what stations report, decides boots and authorisations, and hands transaction events
to a `SessionHook` (billing plugs in there). It knows nothing of OCPP versions or websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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
from csms.ocpp.configuration import Setting
from csms.ocpp.events import (
    PROTOCOL_16,
    AuthDecision,
    BootDecision,
    BootInfo,
    BootStatus,
    IdToken,
    MeterReading,
    MeterReport,
    SecurityEventReport,
    StationRef,
    StatusReport,
    TransactionAnswer,
    TransactionEvent,
    TransactionPhase,
)
from csms.ocpp.group_commit import BatchRead, GroupCommit, write_with_batch
from csms.ocpp.models import OcppStation, Transaction, TransactionMessage
from csms.ocpp.reservation_book import check_open_ahead, reservation_gate
from csms.ocpp.reservations import Reservation, refused
from csms.ocpp.rows import (
    STATION,
    TRANSACTION,
    TRANSACTION_END,
    TRANSACTION_ENDED,
    TRANSACTION_ENDED_STARTED_HERE,
    TRANSACTION_INSERT,
    TRANSACTION_INSERT_NUMBERED,
    TRANSACTION_LAST_METER,
    TRANSACTION_MESSAGE,
    TRANSACTION_MESSAGE_INSERT,
    TRANSACTION_METERED,
    TRANSACTION_METERED_STARTED_HERE,
    TRANSACTION_OF_START,
    TRANSACTION_OF_STATION,
    TRANSACTION_STATION_TX_ID,
    StationRows,
    execute,
    full_row,
    insert_id,
)
from csms.ocpp.transactions_ahead import (
    NOT_READ,
    named_ahead,
    named_read_ahead,
    remember_start,
    remember_stop,
    start_read_ahead,
    starts_ahead,
    take_new_id_ahead,
)
from csms.ocpp.wire import ErrorKind, OcppCallError, exact_text
from rfid.registry import look_up_ahead

Clock = Callable[[], datetime]
T = TypeVar("T")
LAST_SEEN_CHUNK = 250

log = structlog.get_logger("csms.ocpp.service")


_FOREIGN: Any = object()


def _foreign_error(station_tx_id: str | None) -> OcppCallError:
    return OcppCallError(
        ErrorKind.PROPERTY, f"transactionId {station_tx_id} is not a transaction of this station"
    )


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
        self._rows = StationRows.for_dialect(dialect)
        self._last_seen: dict[str, datetime] = {}

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
        await self.write(self._rows.connected, {
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
            self._rows.disconnected,
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
                partial(execute, statement=self._rows.last_seen,
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
            await execute(session, self._rows.boot, {
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
            self._rows.send_after_boot, {"station_id": station_id, "send_after_boot": enabled}
        )

    async def set_local_list_version(self, station_id: str, version: int | None) -> None:
        await self.write(
            self._rows.local_list_version,
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
            self.write(self._rows.status_current, row), self.write(self._rows.status_event, row)
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

        reads = (self._badge_read(station, token), _reservations_read(station, now))
        decision = await self.batched(decide, reads)
        self._log_authorize(station, token, decision)
        return decision

    @staticmethod
    def _badge_read(station: StationRef, token: IdToken) -> BatchRead:
        """The badge lookup an authorizer makes for `token`, read ahead with its batch's."""
        return BatchRead(look_up_ahead, (token.value, station.idtag_format, station.site_id))

    def _log_authorize(self, station: StationRef, token: IdToken, decision: AuthDecision) -> None:
        log.info(
            "ocpp.authorize",
            station_id=station.station_id,
            id_tag=token.value,
            status=decision.status.value,
            account_id=decision.account_id,
        )

    # meter values

    async def _store_meter_rows(
        self,
        session: AsyncSession,
        station_id: str,
        report: MeterReport,
        transaction_id: int | None,
    ) -> None:
        rows = [
            {
                "station_id": station_id, "evse_id": report.evse_id,
                "connector_id": report.connector_id, "transaction_id": transaction_id,
                "timestamp": reading.timestamp, "measurand": sample.measurand,
                "phase": sample.phase, "location": sample.location, "context": sample.context,
                "unit": sample.unit, "value": exact_text(sample.value)[:64], "wh": sample.wh,
            }
            for reading in report.readings
            for sample in reading.samples
        ]
        if rows:
            await write_with_batch(session, self._rows.meter_value, rows)

    async def meter_values(self, station: StationRef, report: MeterReport) -> None:
        """MeterValues; with a transaction id they also reach the session hook as Updated."""
        self.seen(station.station_id)

        energy = _last_energy(report.readings)

        async def write(session: AsyncSession) -> Any:
            transaction = None
            if report.station_tx_id is not None:
                transaction = await self._metered_transaction(
                    session, station, report.station_tx_id, energy
                )
                if transaction is _FOREIGN:
                    # Refused after the write, not inside it: a batch is not split for it.
                    return _FOREIGN
            tx_id = transaction.id if transaction is not None else None
            await self._store_meter_rows(session, station.station_id, report, tx_id)
            return transaction

        reads = () if report.station_tx_id is None else (
            BatchRead(named_ahead, (station.station_id, report.station_tx_id)),)
        # Stored (committed) before billing sees it, as before; only the commit is shared.
        transaction = await self.batched(write, reads)
        if transaction is _FOREIGN:
            raise _foreign_error(report.station_tx_id)
        if transaction is not None and self.session_hook:
            stamp = report.readings[-1].timestamp if report.readings else None
            await self.session_hook.transaction_event(
                TransactionEvent(
                    station=station,
                    phase=TransactionPhase.UPDATED,
                    transaction_id=transaction.id,
                    station_tx_id=transaction.station_tx_id,
                    message_key=(
                        f"{station.station_id}:{transaction.station_tx_id}:meter:"
                        f"{stamp.isoformat() if stamp else self.clock().isoformat()}"
                    ),
                    timestamp=stamp,
                    evse_id=report.evse_id,
                    connector_id=report.connector_id,
                    id_token=None,
                    meter_wh=_last_energy(report.readings),
                    readings=report.readings,
                )
            )

    async def _metered_transaction(
        self, session: AsyncSession, station: StationRef, station_tx_id: str, energy: int | None
    ) -> Any:
        """The transaction a MeterValues names (None if unknown), its last reading set to
        `energy` when the values carry one; `_FOREIGN`, with nothing written, for one we must
        refuse. One statement in the common case, an update that reads the row back."""
        refuse_foreign = self._foreign_refused(station)
        ahead = named_read_ahead(session, (station.station_id, station_tx_id))
        if ahead is not NOT_READ:
            if ahead is None or (refuse_foreign and ahead.start_key is None):
                return _FOREIGN if ahead is not None else None
            if energy is not None:
                await write_with_batch(session, TRANSACTION_LAST_METER,
                                       [{"b_id": ahead.id, "b_wh": energy}])
            return ahead
        keys = {"b_station_id": station.station_id, "b_station_tx_id": station_tx_id}
        if energy is not None:
            metered = TRANSACTION_METERED_STARTED_HERE if refuse_foreign else TRANSACTION_METERED
            row = (await execute(session, metered, {**keys, "b_wh": energy})).first()
            if row is not None or not refuse_foreign:
                return row
        # No energy, or only our own transactions were matched: unknown, or foreign.
        return await self._stored_transaction(session, keys, refuse_foreign)

    async def _ended_transaction(
        self, session: AsyncSession, station: StationRef, station_tx_id: str,
        ending: dict[str, Any],
    ) -> Any:
        """The transaction a 1.6 stop names, ended with `ending` unless it had ended before,
        and whether it had (a retransmission); None if unknown; `_FOREIGN`, with nothing
        written, for one we must refuse (unknown, or not started by us, with billing on).
        Read ahead with its batch, the stop joins the batch's executemany; read alone, one
        statement in the common case, an update that reads the row back, and a stop that
        matched nothing then reads the row to tell which."""
        keys = {"b_station_id": station.station_id, "b_station_tx_id": station_tx_id}
        refuse_foreign = self._foreign_refused(station)
        ahead = named_read_ahead(session, (station.station_id, station_tx_id))
        if ahead is not NOT_READ:
            if ahead is None or (refuse_foreign and ahead.start_key is None):
                return _FOREIGN if refuse_foreign else None
            if ahead.ended:
                return ahead, True
            await write_with_batch(session, TRANSACTION_END, [{"b_id": ahead.id, **ending}])
            remember_stop(session, (station.station_id, station_tx_id))
            return ahead, False
        ended = TRANSACTION_ENDED_STARTED_HERE if refuse_foreign else TRANSACTION_ENDED
        row = (await execute(session, ended, {**keys, **ending})).first()
        if row is not None:
            return row, False
        stored = await self._stored_transaction(session, keys, refuse_foreign)
        if stored is None or stored is _FOREIGN:
            # An unknown id is refused too where foreign ones are: a stop would open a row.
            return _FOREIGN if refuse_foreign else None
        return stored, True

    @staticmethod
    async def _stored_transaction(
        session: AsyncSession, keys: dict[str, str], refuse_foreign: bool
    ) -> Any:
        """The transaction row `keys` name as stored (None if unknown); `_FOREIGN` for one we
        never started when those are refused."""
        row = (await execute(session, TRANSACTION_OF_STATION, keys)).first()
        if row is not None and row.start_key is None and refuse_foreign:
            return _FOREIGN
        return row

    # transactions

    def _foreign_refused(self, station: StationRef) -> bool:
        """1.6 transaction ids are ours: with billing on, one we never handed out is refused
        (by the billing hook, `csms.charging`), so it is refused before anything is stored.
        Without billing such a stop is kept, as before, rather than lost."""
        return station.protocol == PROTOCOL_16 and self.session_hook is not None

    async def _transaction(
        self, session: AsyncSession, station_id: str, station_tx_id: str
    ) -> Transaction | None:
        return (
            await session.exec(
                select(Transaction)
                .where(Transaction.station_id == station_id)
                .where(Transaction.station_tx_id == station_tx_id)
            )
        ).first()

    async def _hook(self, event: TransactionEvent) -> TransactionAnswer:
        if self.session_hook is None:
            return TransactionAnswer()
        return await self.session_hook.transaction_event(event) or TransactionAnswer()

    async def start_transaction(
        self,
        station: StationRef,
        *,
        connector_id: int,
        token: IdToken,
        meter_start_wh: int,
        timestamp: datetime | None,
        reservation_id: int | None,
        payload: dict[str, Any],
    ) -> tuple[int, AuthDecision]:
        """1.6 StartTransaction: allocate our transaction id (the same one for a retransmission)."""
        self.seen(station.station_id)
        stamp = timestamp.isoformat() if timestamp else ""
        start_key = f"{connector_id}|{token.value}|{stamp}|{meter_start_wh}"
        start = (station.station_id, start_key)
        now = self.clock()

        async def write(
            session: AsyncSession,
        ) -> tuple[int, str, bool, AuthDecision, Reservation | None]:
            decision = await self.authorizer(session, station, token, now, starts=True)
            # Core statements, not ORM objects: a start is the mix's costliest message.
            existing = start_read_ahead(session, start)
            if existing is NOT_READ:
                existing = (await execute(session, TRANSACTION_OF_START, {
                    "b_station_id": station.station_id, "b_start_key": start_key,
                })).first()
            duplicate = existing is not None
            if existing is None:
                row = full_row(
                    TRANSACTION,
                    station_id=station.station_id,
                    ended=False,
                    protocol=station.protocol,
                    evse_id=connector_id,
                    connector_id=connector_id,
                    id_tag=token.value,
                    reservation_id=reservation_id,
                    started_at=timestamp,
                    meter_start_wh=meter_start_wh,
                    last_meter_wh=meter_start_wh,
                    start_key=start_key,
                    received_at=now,
                )
                # The row id is the transactionId we hand out.
                tx_pk = await self._inserted_start(session, start, row)
                station_tx_id = str(tx_pk)
                await write_with_batch(session, TRANSACTION_MESSAGE_INSERT, [full_row(
                    TRANSACTION_MESSAGE, transaction_id=tx_pk, action="StartTransaction",
                    event_type=TransactionPhase.STARTED.value, timestamp=timestamp,
                    payload=payload, received_at=now,
                )])
            else:
                tx_pk, station_tx_id = existing.id, existing.station_tx_id
            # Reservations: the one this start uses ends; somebody else's refuses the badge.
            blocking = await reservation_gate(
                session, station, connector=connector_id, token=token, decision=decision,
                now=now, starting=None if duplicate else tx_pk,
                reservation_id=reservation_id,
            )
            return tx_pk, station_tx_id, duplicate, decision, blocking

        reads = (self._badge_read(station, token), BatchRead(starts_ahead, start),
                 _reservations_read(station, now))
        tx_pk, station_tx_id, duplicate, decision, blocking = await self.batched(write, reads)
        self._log_authorize(station, token, decision)
        event = TransactionEvent(
            station=station,
            phase=TransactionPhase.STARTED,
            transaction_id=tx_pk,
            station_tx_id=station_tx_id,
            message_key=f"{station.station_id}:{station_tx_id}:start",
            timestamp=timestamp,
            evse_id=connector_id,
            connector_id=connector_id,
            id_token=token,
            meter_wh=meter_start_wh,
            duplicate=duplicate,
            extra={"authorization": decision.status.value},
        )
        answer = await self._hook(event)
        final = _answer_to_badge(decision, answer.decision, blocking)
        assert final is not None
        return tx_pk, final

    @staticmethod
    async def _inserted_start(
        session: AsyncSession, start: tuple[str, str], row: dict[str, Any]
    ) -> int:
        """The id of a new 1.6 start's `row`: written with the batch under the id taken
        ahead (csms.ocpp.transactions_ahead), or inserted now and its transaction id set."""
        tx_pk = take_new_id_ahead(session, start)
        if tx_pk is not None:
            await write_with_batch(session, TRANSACTION_INSERT_NUMBERED, [
                {**row, "id": tx_pk, "station_tx_id": str(tx_pk)}])
        else:
            # Replaced by str(id) below, once the id is known.
            pending = f"pending:{row['start_key']}"[:64]
            tx_pk = await insert_id(session, TRANSACTION_INSERT,
                                    {**row, "station_tx_id": pending})
            await execute(session, TRANSACTION_STATION_TX_ID, {
                "b_id": tx_pk, "b_station_tx_id": str(tx_pk),
            })
        remember_start(session, start, tx_pk)
        return tx_pk

    async def stop_transaction(
        self,
        station: StationRef,
        *,
        transaction_id: int,
        token: IdToken | None,
        meter_stop_wh: int,
        timestamp: datetime | None,
        reason: str | None,
        readings: tuple[MeterReading, ...],
        payload: dict[str, Any],
    ) -> AuthDecision | None:
        """1.6 StopTransaction; an unknown id is stored as a transaction of its own."""
        self.seen(station.station_id)
        now = self.clock()

        async def write(
            session: AsyncSession,
        ) -> tuple[str, int, int | None, bool, AuthDecision | None] | None:
            ending = {"b_ended_at": timestamp, "b_wh": meter_stop_wh, "b_reason": reason}
            found = await self._ended_transaction(session, station, str(transaction_id), ending)
            if found is _FOREIGN:
                return None
            if found is None:
                # A transaction started while we were unreachable, or before a database reset:
                # keep what we learn rather than losing the stop.
                tx_pk = await insert_id(session, TRANSACTION_INSERT, full_row(
                    TRANSACTION,
                    station_id=station.station_id,
                    ended=True,
                    ended_at=timestamp,
                    station_tx_id=str(transaction_id),
                    protocol=station.protocol,
                    id_tag=token.value if token else None,
                    meter_stop_wh=meter_stop_wh,
                    last_meter_wh=meter_stop_wh,
                    stop_reason=reason,
                    received_at=now,
                ))
                station_tx_id = str(transaction_id)
                connector, duplicate = None, False
            else:
                row, duplicate = found
                tx_pk, station_tx_id, connector = row.id, row.station_tx_id, row.connector_id
            if not duplicate:
                await write_with_batch(session, TRANSACTION_MESSAGE_INSERT, [full_row(
                    TRANSACTION_MESSAGE, transaction_id=tx_pk, action="StopTransaction",
                    event_type=TransactionPhase.ENDED.value, timestamp=timestamp,
                    payload=payload, received_at=now,
                )])
                report = MeterReport(connector, connector, None, readings)
                await self._store_meter_rows(session, station.station_id, report, tx_pk)
            decision = (
                await self.authorizer(session, station, token, now) if token is not None else None
            )
            return station_tx_id, tx_pk, connector, duplicate, decision

        stopped = BatchRead(named_ahead, (station.station_id, str(transaction_id)))
        reads = (stopped,) if token is None else (stopped, self._badge_read(station, token))
        written = await self.batched(write, reads)
        if written is None:
            raise _foreign_error(str(transaction_id))
        station_tx_id, tx_pk, connector, duplicate, decision = written
        if token is not None and decision is not None:
            self._log_authorize(station, token, decision)
        event = TransactionEvent(
            station=station,
            phase=TransactionPhase.ENDED,
            transaction_id=tx_pk,
            station_tx_id=station_tx_id,
            message_key=f"{station.station_id}:{station_tx_id}:stop",
            timestamp=timestamp,
            evse_id=connector,
            connector_id=connector,
            id_token=token,
            meter_wh=meter_stop_wh,
            stop_reason=reason,
            readings=readings,
            duplicate=duplicate,
        )
        answer = await self._hook(event)
        return answer.decision or decision

    async def transaction_event(
        self,
        station: StationRef,
        *,
        phase: TransactionPhase,
        station_tx_id: str,
        seq_no: int,
        trigger: str | None,
        timestamp: datetime | None,
        evse_id: int | None,
        connector_id: int | None,
        token: IdToken | None,
        charging_state: str | None,
        stop_reason: str | None,
        readings: tuple[MeterReading, ...],
        payload: dict[str, Any],
        reservation_id: int | None = None,
    ) -> TransactionAnswer:
        """2.0.1 TransactionEvent; a repeated seqNo is recognised and not stored twice."""
        self.seen(station.station_id)
        now = self.clock()
        energy = _last_energy(readings)
        # Reservations: as at a 1.6 start, when a badge (or a reservation) comes along.
        gated = phase is not TransactionPhase.ENDED and (
            token is not None or reservation_id is not None
        )

        async def write(
            session: AsyncSession,
        ) -> tuple[int, bool, AuthDecision | None, Reservation | None]:
            transaction = await self._transaction(session, station.station_id, station_tx_id)
            if transaction is None:
                transaction = Transaction(
                    station_id=station.station_id,
                    station_tx_id=station_tx_id,
                    protocol=station.protocol,
                    received_at=now,
                )
                session.add(transaction)
                await session.flush()
            assert transaction.id is not None
            seen_before = (
                await session.exec(
                    select(TransactionMessage.id)
                    .where(TransactionMessage.transaction_id == transaction.id)
                    .where(TransactionMessage.seq_no == seq_no)
                )
            ).first()
            duplicate = seen_before is not None
            if not duplicate:
                if evse_id is not None:
                    transaction.evse_id = evse_id
                if connector_id is not None:
                    transaction.connector_id = connector_id
                if token is not None and transaction.id_tag is None:
                    transaction.id_tag = token.value
                if charging_state is not None:
                    transaction.charging_state = charging_state
                if phase is TransactionPhase.STARTED or transaction.started_at is None:
                    transaction.started_at = transaction.started_at or timestamp
                if energy is not None:
                    if transaction.meter_start_wh is None:
                        transaction.meter_start_wh = energy
                    transaction.last_meter_wh = energy
                if phase is TransactionPhase.ENDED:
                    transaction.ended = True
                    transaction.ended_at = timestamp
                    transaction.stop_reason = stop_reason
                    transaction.meter_stop_wh = (
                        energy if energy is not None else transaction.last_meter_wh
                    )
                session.add(
                    TransactionMessage(
                        transaction_id=transaction.id,
                        action="TransactionEvent",
                        event_type=phase.value,
                        seq_no=seq_no,
                        trigger_reason=trigger,
                        timestamp=timestamp,
                        payload=payload,
                        received_at=now,
                    )
                )
                report = MeterReport(evse_id, connector_id, station_tx_id, readings)
                await self._store_meter_rows(session, station.station_id, report, transaction.id)
            starts = phase is TransactionPhase.STARTED or trigger == "Authorized"
            decision = (
                await self.authorizer(session, station, token, now, starts=starts)
                if token is not None else None
            )
            blocking = None
            if gated:
                blocking = await reservation_gate(
                    session, station, connector=transaction.evse_id, token=token,
                    decision=decision, now=now,
                    starting=None if duplicate else transaction.id, reservation_id=reservation_id,
                )
            return transaction.id, duplicate, decision, blocking

        reads: list[BatchRead] = []
        if token is not None:
            reads.append(self._badge_read(station, token))
        if gated:
            reads.append(_reservations_read(station, now))
        tx_pk, duplicate, decision, blocking = await self.batched(write, reads)
        if token is not None and decision is not None:
            self._log_authorize(station, token, decision)
        event = TransactionEvent(
            station=station,
            phase=phase,
            transaction_id=tx_pk,
            station_tx_id=station_tx_id,
            message_key=f"{station.station_id}:{station_tx_id}:{seq_no}",
            timestamp=timestamp,
            evse_id=evse_id,
            connector_id=connector_id,
            id_token=token,
            meter_wh=energy,
            trigger=trigger,
            stop_reason=stop_reason,
            charging_state=charging_state,
            readings=readings,
            duplicate=duplicate,
            extra={"seq_no": seq_no, "offline": bool(payload.get("offline", False))},
        )
        answer = await self._hook(event)
        return replace(answer, decision=_answer_to_badge(decision, answer.decision, blocking))

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

        await self.write(self._rows.security_event, {
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
            await self.write(self._rows.station_message, row)
            return

        async def write(session: AsyncSession) -> None:
            state = await self._state(session, station.station_id)
            state.firmware_status = str(payload.get("status"))[:64]
            await execute(session, self._rows.station_message, row)

        await self.batched(write)


def _reservations_read(station: StationRef, now: datetime) -> BatchRead:
    """Whether the station holds an open reservation (a reservation gate's first question),
    read ahead with its batch's."""
    return BatchRead(check_open_ahead, (station.station_id, now))


def _last_energy(readings: tuple[MeterReading, ...]) -> int | None:
    for reading in reversed(readings):
        energy = reading.energy_wh()
        if energy is not None:
            return energy
    return None


def _answer_to_badge(
    own: AuthDecision | None, hook: AuthDecision | None, blocking: Reservation | None
) -> AuthDecision | None:
    """What a transaction message's badge is told: the session hook's answer (the use's own
    standing) over the authorizer's, except a final refusal of the authorizer's (a master pass
    starting); and, after both, nobody is let past another badge's reservation."""
    chosen = own if own is not None and own.final else hook or own
    return refused(chosen, blocking) if chosen is not None else None
