"""Prepaid charging: the one money flow of DESIGN.md for OCPP transactions of both versions.

badge -> rfid decides who pays -> wallet opens a hold -> the station's meter values grow the
usage -> pricing rates the usage so far -> wallet raises the hold -> when the wallet refuses
and no friendly window applies, the station is told to stop -> at the end pricing rates the
final usage, the wallet settles the hold and writes the ledger entry.

`BillingService.transaction_event` is the OCPP station service's `SessionHook`;
`BillingService.authorize` its `Authorizer`. Each message is one database transaction: the
session row is locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite serialises writers), the
message's points are stored once (unique per message and index), the bill is recomputed from
all points with `pricing.rate` (so the live cost, the final bill and the debit are the same
function of the same usage), the wallet moves, and everything commits together. A crash at any
point leaves either all of it or none; the station's retransmission then does the rest.

Money keys are derived from their cause: the hold from station + transaction
(`charging:{station}:{tx}:hold`), each raise from the message that grew the usage
(`charging:{message_key}:raise`), the settlement from station + transaction
(`charging:{station}:{tx}:settle`): whichever way a session ends (the station's stop, a repeated
stop, a reboot, a timeout, staff), it is settled once.

Commands to stations (stop, CostUpdated, California Pricing) go out after the commit, through
the bus to the node holding the station; they move no money, and a stop that did not arrive is
asked again by the next meter value or the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.charging.authorizer import authorize_badge, badge_owner, station_tariff
from csms.charging.cost_messages import (
    cost_updated,
    final_cost,
    final_text,
    running_cost,
    set_user_price,
)
from csms.charging.models import (
    ChargingPoint,
    ChargingSession,
    ChargingStationConfig,
    SessionStatus,
)
from csms.charging.usage import BuiltUsage, Point, build_usage, effective_time
from csms.inventory.models import Site
from csms.ocpp.events import (
    PROTOCOL_16,
    AuthDecision,
    AuthStatus,
    IdToken,
    StationRef,
    TransactionAnswer,
    TransactionEvent,
    TransactionPhase,
)
from csms.ocpp.models import OcppStation, StatusEvent, Transaction
from csms.ocpp.wire import ErrorKind, OcppCallError
from pricing import Bill, Tariff, bill_to_json, load_tariff, rate
from rfid.authorisation import decide
from rfid.registry import badge_state
from wallet.errors import CreditRefused
from wallet.ledger import dialect_insert
from wallet.models import AlertOutbox, HoldRecord
from wallet.service import adjust_hold, credit_decision, debit, open_hold, settle_hold

log = structlog.get_logger("csms.charging")

Clock = Callable[[], datetime]
SERVICE = "charging"


class StationCommands(Protocol):
    """How billing reaches a station on whichever node holds it (`ocpp.commands.StationGateway`)."""

    async def call(
        self, station_id: str, action: str, payload: Any, *, timeout: float | None = None
    ) -> dict[str, Any]: ...

    async def remote_stop(self, station_id: str, station_tx_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class BillingOptions:
    # Reserved when a session starts (cut to what the wallet has); raised as the cost grows.
    initial_hold: Decimal = Decimal("5.00")
    # How often the sweep looks for sessions to close (reboots, silence, missing messages).
    sweep_interval_s: float = 5.0
    # 2.0.1: how long after Ended to wait for messages a seqNo gap says are missing.
    gap_wait_s: float = 600.0
    # A stop the station did not act on is asked again after this long.
    stop_retry_s: float = 60.0
    command_timeout_s: float = 30.0


@dataclass(slots=True)
class _After:
    """Commands to send once the transaction committed."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    stops: list[tuple[str, str]] = field(default_factory=list)


def hold_key(station_id: str, station_tx_id: str) -> str:
    return f"charging:{station_id}:{station_tx_id}:hold"


def settle_key(station_id: str, station_tx_id: str) -> str:
    return f"charging:{station_id}:{station_tx_id}:settle"


def _flag(row: ChargingSession, *flags: str) -> None:
    new = [f for f in flags if f not in row.flags]
    if new:
        row.flags = [*row.flags, *new]


class BillingService:
    """One per node; plugged into the OCPP server as authorizer and session hook."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        commands: StationCommands | None = None,
        options: BillingOptions | None = None,
    ) -> None:
        self._sessions = sessions
        self.clock = clock
        self.commands = commands
        self.options = options or BillingOptions()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tariffs: dict[int, Tariff] = {}

    # -- authorisation (the OCPP `Authorizer`) ------------------------------------------------

    async def authorize(
        self, session: AsyncSession, station: StationRef, token: IdToken, now: datetime
    ) -> AuthDecision:
        decision = await authorize_badge(session, station, token, now)
        if decision.accepted and station.protocol == PROTOCOL_16:
            config = await session.get(ChargingStationConfig, station.station_id)
            if config is not None and config.california_pricing:
                text = decision.personal_message or ""
                after = _After(calls=[(station.station_id, "DataTransfer",
                                       set_user_price(token.value, text))])
                self._send(after)
        return decision

    # -- the session hook ---------------------------------------------------------------------

    async def transaction_event(self, event: TransactionEvent) -> TransactionAnswer | None:
        after = _After()
        now = self.clock()
        async with self._sessions() as db:
            row = await self._session_for(db, event, now)
            if row is None:
                return None
            answer = await self._apply(db, row, event, now, after)
            await db.commit()
        self._send(after)
        return answer

    async def _session_for(
        self, db: AsyncSession, event: TransactionEvent, now: datetime
    ) -> ChargingSession | None:
        row = await self._lock(db, event.transaction_id)
        if row is not None:
            return row
        tx = await db.get(Transaction, event.transaction_id)
        if tx is None:
            return None
        if (
            event.station.protocol == PROTOCOL_16
            and event.phase is not TransactionPhase.STARTED
            and tx.start_key is None
        ):
            # 1.6 transaction ids are ours: one we never handed out to this station is wrong.
            log.warning(
                "charging.wrong_transaction_id",
                station_id=event.station.station_id,
                transaction_id=event.station_tx_id,
                phase=event.phase.value,
            )
            raise OcppCallError(
                ErrorKind.PROPERTY,
                f"transactionId {event.station_tx_id} is not a transaction of this station",
            )
        site = await db.get(Site, event.station.site_id)
        tariff = await station_tariff(db, event.station)
        values: dict[str, Any] = {
            "id": tx.id,
            "station_id": event.station.station_id,
            "station_tx_id": tx.station_tx_id,
            "site_id": event.station.site_id,
            "protocol": event.station.protocol,
            "evse_id": tx.evse_id if tx.evse_id is not None else event.evse_id,
            "connector_id": tx.connector_id if tx.connector_id is not None else event.connector_id,
            "tariff_id": event.station.tariff_id,
            "tariff": tariff,
            "currency": str(tariff.get("currency") or (site.currency if site else "EUR")),
            "status": SessionStatus.ACTIVE,
            "received_at": now,
            "last_message_at": now,
            "energy_wh": 0,
            "duration_s": 0,
            "idle_s": 0,
            "free": False,
            "lines": [],
            "stop_requests": 0,
            "flags": [],
        }
        await db.exec(
            dialect_insert(db, ChargingSession).values(**values).on_conflict_do_nothing()
        )
        row = await self._lock(db, event.transaction_id)
        assert row is not None
        if tx.start_key is not None and tx.started_at is not None:
            # 1.6: the StartTransaction as stored by the OCPP layer (also when its hook failed).
            start_at, implausible = effective_time(tx.started_at, tx.received_at or now)
            await self._insert_points(db, row, [
                _point_values(row.id, f"{row.station_id}:{row.station_tx_id}:start", 0, "start",
                              start_at, tx.started_at, tx.received_at or now, implausible,
                              tx.meter_start_wh, None, None)
            ])
            row.started_at = start_at
            row.meter_start_wh = tx.meter_start_wh
            if implausible:
                _flag(row, "implausible_timestamp")
            if tx.id_tag:
                await self._bind_badge(db, row, event.station, tx.id_tag, now)
        return row

    async def _lock(self, db: AsyncSession, session_id: int) -> ChargingSession | None:
        return (
            await db.exec(
                select(ChargingSession)
                .where(col(ChargingSession.id) == session_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).first()

    async def _bind_badge(
        self, db: AsyncSession, row: ChargingSession, station: StationRef, id_tag: str,
        now: datetime,
    ) -> None:
        """Whose session it is, and the hold if the badge may charge (once per session)."""
        if row.id_tag is not None:
            return
        row.id_tag = id_tag[:64]
        found = await badge_owner(db, station, id_tag)
        if found is None:
            row.auth_status = AuthStatus.INVALID.value
            _flag(row, "unknown_badge")
            log.warning("charging.unknown_badge", station_id=row.station_id,
                        session_id=row.id, id_tag=id_tag)
            return
        owner, badge = found
        row.account_id = owner.account_id
        site = await db.get(Site, station.site_id)
        zone = ZoneInfo(site.timezone if site is not None else "UTC")
        standing = decide(badge_state(badge), now=now, tz=zone)
        if not standing.accepted:
            # Billed all the same (a late offline session of a badge blocked meanwhile).
            row.auth_status = standing.status.value
            _flag(row, f"badge_{standing.reason.replace('badge-', '')}")
            return
        try:
            hold = await open_hold(
                db, account_id=owner.account_id, amount=self.options.initial_hold,
                key=hold_key(row.station_id, row.station_tx_id), service=SERVICE,
                reference=f"{row.station_id}/{row.station_tx_id}", at=now, allow_partial=True,
            )
        except CreditRefused as refused:
            row.auth_status = (
                AuthStatus.BLOCKED.value if refused.reason == "blocked"
                else AuthStatus.NO_CREDIT.value
            )
            _flag(row, "credit_refused")
            log.info("charging.start_refused", station_id=row.station_id, session_id=row.id,
                     account_id=owner.account_id, reason=refused.reason)
            return
        row.hold_id = hold.id
        row.free = hold.free
        row.auth_status = AuthStatus.ACCEPTED.value
        if hold.free:
            _flag(row, "free")

    async def _apply(
        self, db: AsyncSession, row: ChargingSession, event: TransactionEvent, now: datetime,
        after: _After,
    ) -> TransactionAnswer:
        completed_before = row.status == SessionStatus.COMPLETED
        row.last_message_at = now
        if event.evse_id is not None and row.evse_id is None:
            row.evse_id = event.evse_id
        if event.connector_id is not None and row.connector_id is None:
            row.connector_id = event.connector_id
        if event.extra.get("offline"):
            _flag(row, "offline")
        points = self._points_of(row, event, now)
        inserted = await self._insert_points(db, row, points)
        if any(p["implausible"] for p in points):
            _flag(row, "implausible_timestamp")
        if completed_before:
            if inserted:
                _flag(row, "meter_after_stop")
                log.info("charging.after_stop", session_id=row.id, station_id=row.station_id,
                         points=inserted)
            return self._answer(row, event)
        if event.id_token is not None and not completed_before:
            await self._bind_badge(db, row, event.station, event.id_token.value, now)
        seq = event.extra.get("seq_no")
        if event.phase is TransactionPhase.STARTED and row.protocol != PROTOCOL_16:
            start = min(p["at"] for p in points) if points else None
            if start is not None and (row.started_at is None or start < row.started_at):
                row.started_at = start
            if isinstance(seq, int):
                row.start_seq = seq
        if event.phase is TransactionPhase.ENDED and row.ended_at is None:
            end = max(p["at"] for p in points) if points else now
            row.ended_at = end
            row.ended_received_at = now
            row.stop_reason = (event.stop_reason or "")[:32] or None
            if isinstance(seq, int):
                row.end_seq = seq
        if row.ended_at is not None:
            if await self._complete(db, row):
                await self._settle(db, row, now, after)
            else:
                row.status = SessionStatus.ENDING
                _flag(row, "seq_gap")
                await self._live(db, row, event, now, after, running=False)
        else:
            await self._live(db, row, event, now, after, running=True)
        return self._answer(row, event)

    def _answer(self, row: ChargingSession, event: TransactionEvent) -> TransactionAnswer:
        decision = None
        if event.id_token is not None and row.auth_status is not None:
            decision = AuthDecision(AuthStatus(row.auth_status), account_id=row.account_id)
        total = None
        if event.phase is TransactionPhase.ENDED and row.status == SessionStatus.COMPLETED:
            if row.free:
                total = Decimal("0.00")
            elif row.account_id is not None:
                total = row.gross
        return TransactionAnswer(decision, total)

    def _points_of(
        self, row: ChargingSession, event: TransactionEvent, now: datetime
    ) -> list[dict[str, Any]]:
        seq = event.extra.get("seq_no")
        seq_no = seq if isinstance(seq, int) else None
        kind = {
            TransactionPhase.STARTED: "start",
            TransactionPhase.ENDED: "stop",
        }.get(event.phase, "meter")
        values: list[dict[str, Any]] = []
        if row.protocol == PROTOCOL_16:
            if event.phase is TransactionPhase.STARTED:
                return values  # taken from the stored transaction in `_session_for`
            if event.phase is TransactionPhase.ENDED:
                at, bad = effective_time(event.timestamp, now)
                values.append(_point_values(row.id, event.message_key, 0, "stop", at,
                                            event.timestamp, now, bad, event.meter_wh, None,
                                            None))
        else:
            at, bad = effective_time(event.timestamp, now)
            values.append(_point_values(row.id, event.message_key, 0, kind, at, event.timestamp,
                                        now, bad, None, event.charging_state, seq_no))
        for index, reading in enumerate(event.readings, start=1):
            register = reading.energy_wh()
            if register is None:
                continue
            at, bad = effective_time(reading.timestamp, now)
            values.append(_point_values(row.id, event.message_key, index, "meter", at,
                                        reading.timestamp, now, bad, register, None, seq_no))
        return values

    async def _insert_points(
        self, db: AsyncSession, row: ChargingSession, values: list[dict[str, Any]]
    ) -> int:
        inserted = 0
        for value in values:
            result = await db.exec(
                dialect_insert(db, ChargingPoint).values(**value).on_conflict_do_nothing(
                    index_elements=["session_id", "source", "idx"]
                )
            )
            inserted += max(result.rowcount or 0, 0)
        return inserted

    # -- usage and bill -----------------------------------------------------------------------

    async def _tariff(self, db: AsyncSession, row: ChargingSession) -> Tariff:
        tariff = self._tariffs.get(row.id)
        if tariff is None:
            site = await db.get(Site, row.site_id)
            tariff = load_tariff(
                row.tariff,
                site_timezone=site.timezone if site else None,
                site_country=site.country if site else None,
                site_region=site.region if site else None,
            )
            if len(self._tariffs) > 4096:
                self._tariffs.clear()
            self._tariffs[row.id] = tariff
        return tariff

    async def _rate(
        self, db: AsyncSession, row: ChargingSession
    ) -> tuple[BuiltUsage, Bill] | None:
        built = await session_usage(db, row)
        if built is None:
            return None
        bill = rate(await self._tariff(db, row), built.usage)
        row.energy_wh = built.energy_wh
        row.duration_s = built.duration_s
        row.idle_s = built.idle_s
        row.meter_last_wh = built.last_register_wh
        if built.register_reset:
            _flag(row, "register_reset")
        return built, bill

    async def _complete(self, db: AsyncSession, row: ChargingSession) -> bool:
        """Whether every message up to the end is here (2.0.1 seqNo; 1.6 has none)."""
        if row.protocol == PROTOCOL_16 or row.end_seq is None:
            return True
        if row.start_seq is None:
            return False
        seqs = set(
            (
                await db.exec(
                    select(ChargingPoint.seq_no)
                    .where(col(ChargingPoint.session_id) == row.id)
                    .where(col(ChargingPoint.seq_no).is_not(None))
                    .distinct()
                )
            ).all()
        )
        return all(seq in seqs for seq in range(row.start_seq, row.end_seq + 1))

    async def _live(
        self, db: AsyncSession, row: ChargingSession, event: TransactionEvent | None,
        now: datetime, after: _After, *, running: bool,
    ) -> None:
        rated = await self._rate(db, row)
        if rated is None:
            return
        built, bill = rated
        # The first rating (the start) has nothing to show yet.
        changed = row.live_gross is not None and bill.gross != row.live_gross
        row.live_gross = bill.gross
        row.lines = bill_to_json(bill)["lines"]
        if row.hold_id is not None and event is not None:
            await self._raise_hold(db, row, bill.total, event.message_key, now, after)
        retry = timedelta(seconds=self.options.stop_retry_s)
        if running and row.stop_requested_at is not None and now - row.stop_requested_at >= retry:
            self._request_stop(row, now, after, reason=None)
        if not running or not changed:
            return
        shown = Decimal("0.00") if row.free else bill.gross
        if row.protocol != PROTOCOL_16:
            after.calls.append((row.station_id, "CostUpdated",
                                cost_updated(row.station_tx_id, shown, row.currency)))
        elif await self._california(db, row.station_id):
            last = built.usage.samples[-1]
            after.calls.append((row.station_id, "DataTransfer", running_cost(
                row.id, at=last.at, meter_wh=row.meter_last_wh or 0, cost=shown,
                currency=row.currency, charging=last.charging)))

    async def _raise_hold(
        self, db: AsyncSession, row: ChargingSession, target: Decimal, cause: str,
        now: datetime, after: _After,
    ) -> None:
        assert row.hold_id is not None
        hold = await db.get(HoldRecord, row.hold_id, populate_existing=True)
        if hold is None or hold.status != "open" or target <= hold.amount:
            return
        try:
            await adjust_hold(db, row.hold_id, target, key=f"charging:{cause}:raise", at=now)
        except CreditRefused as refused:
            available = refused.details.get("available")
            if isinstance(available, Decimal) and available > 0:
                # Everything the wallet allows is now held: the usage stops here.
                await adjust_hold(db, row.hold_id, hold.amount + available,
                                  key=f"charging:{cause}:raise-all", at=now)
            if row.stop_requested_at is None:
                _flag(row, "credit_stop")
                self._request_stop(row, now, after, reason=refused.reason)
                assert row.account_id is not None
                db.add(AlertOutbox(
                    account_id=row.account_id, kind="charging_stopped", created_at=now,
                    payload={"session_id": row.id, "station_id": row.station_id,
                             "reason": refused.reason, "cost": str(target),
                             "currency": row.currency},
                ))
            return
        if target > 0 and row.account_id is not None:
            decision = await credit_decision(db, row.account_id, now)
            if decision.available < 0 and decision.friendly is not None:
                _flag(row, "friendly_credit")

    def _request_stop(
        self, row: ChargingSession, now: datetime, after: _After, *, reason: str | None
    ) -> None:
        row.stop_requested_at = now
        row.stop_requests += 1
        after.stops.append((row.station_id, row.station_tx_id))
        log.info("charging.stop_requested", session_id=row.id, station_id=row.station_id,
                 reason=reason, attempt=row.stop_requests)

    async def _california(self, db: AsyncSession, station_id: str) -> bool:
        config = await db.get(ChargingStationConfig, station_id)
        return bool(config is not None and config.california_pricing)

    async def _settle(
        self, db: AsyncSession, row: ChargingSession, now: datetime, after: _After
    ) -> None:
        rated = await self._rate(db, row)
        bill: Bill | None = rated[1] if rated is not None else None
        if bill is not None:
            row.net, row.vat, row.gross = bill.net, bill.vat, bill.gross
            row.lines = bill_to_json(bill)["lines"]
            row.live_gross = bill.gross
        key = settle_key(row.station_id, row.station_tx_id)
        description = f"charging {row.station_id} #{row.station_tx_id}, {row.energy_wh} Wh"
        recovery = bill.recovery if bill is not None and bill.has_recovery else None
        if bill is not None and row.hold_id is not None:
            settled = await settle_hold(
                db, row.hold_id, net=bill.net, vat=bill.vat, gross=bill.gross, service=SERVICE,
                key=key, description=description, energy_wh=row.energy_wh, recovery=recovery,
                at=now,
            )
            row.entry_id = settled.entry.id if settled.entry else None
        elif bill is not None and row.account_id is not None:
            debited = await debit(
                db, account_id=row.account_id, net=bill.net, vat=bill.vat, gross=bill.gross,
                service=SERVICE, key=key, description=description, energy_wh=row.energy_wh,
                recovery=recovery, at=now,
            )
            row.entry_id = debited.entry.id if debited.entry else None
        row.status = SessionStatus.COMPLETED
        row.billed_at = now
        if row.ended_at is not None:
            later = (
                await db.exec(
                    select(func.count()).select_from(ChargingPoint)
                    .where(col(ChargingPoint.session_id) == row.id)
                    .where(col(ChargingPoint.at) > row.ended_at)
                )
            ).one()
            if later:
                _flag(row, "meter_after_stop")
        log.info("charging.settled", session_id=row.id, station_id=row.station_id,
                 account_id=row.account_id, gross=str(row.gross), energy_wh=row.energy_wh,
                 flags=row.flags)
        self._tariffs.pop(row.id, None)
        if row.protocol == PROTOCOL_16 and bill is not None and await self._california(
            db, row.station_id
        ):
            cost = Decimal("0.00") if row.free else bill.gross
            language = await self._language(db, row.account_id)
            after.calls.append((row.station_id, "DataTransfer", final_cost(
                row.id, cost=cost, currency=row.currency,
                price_text=final_text(cost, row.currency, language))))

    async def _language(self, db: AsyncSession, account_id: str | None) -> str:
        from wallet.models import Account

        account = await db.get(Account, account_id) if account_id else None
        return account.language if account is not None else "de"

    # -- closing sessions the station does not close ------------------------------------------

    async def close(self, session_id: int, *, flag: str, staff: str | None = None) -> bool:
        """Close an open session from its last meter value and settle it; False if it was not
        open. Used for reboots, silence, missing messages and staff stops."""
        after = _After()
        now = self.clock()
        async with self._sessions() as db:
            row = await self._lock(db, session_id)
            if row is None or row.status == SessionStatus.COMPLETED:
                return False
            if row.ended_at is None:
                last = (
                    await db.exec(
                        select(func.max(ChargingPoint.at))
                        .where(col(ChargingPoint.session_id) == row.id)
                        .where(col(ChargingPoint.register_wh).is_not(None))
                    )
                ).one()
                row.ended_at = last or row.started_at or now
                row.stop_reason = flag[:32]
            _flag(row, flag)
            await self._settle(db, row, now, after)
            if staff is not None:
                log.info("charging.staff_stop", session_id=row.id, staff=staff)
                after.stops.append((row.station_id, row.station_tx_id))
            await db.commit()
        self._send(after)
        return True

    async def sweep(self) -> int:
        """Close what is due: sessions of rebooted stations, silent stations, and 2.0.1
        sessions whose missing messages did not come. Returns how many were closed."""
        now = self.clock()
        due: list[tuple[int, str]] = []
        async with self._sessions() as db:
            rows = (
                await db.exec(
                    select(ChargingSession, OcppStation.last_boot_at, ChargingStationConfig)
                    .join(OcppStation, col(OcppStation.station_id) == ChargingSession.station_id,
                          isouter=True)
                    .join(ChargingStationConfig,
                          col(ChargingStationConfig.station_id) == ChargingSession.station_id,
                          isouter=True)
                    .where(col(ChargingSession.status) != SessionStatus.COMPLETED)
                )
            ).all()
            for row, last_boot, config in rows:
                reboot_after = config.reboot_close_after_s if config else 0
                silent_after = config.silent_close_after_s if config else None
                if row.status == SessionStatus.ENDING:
                    waited = now - (row.ended_received_at or now)
                    if waited >= timedelta(seconds=self.options.gap_wait_s):
                        due.append((row.id, "seq_gap_timeout"))
                    continue
                if last_boot is not None and row.received_at is not None and (
                    last_boot > row.received_at
                    and now - last_boot >= timedelta(seconds=reboot_after)
                ):
                    due.append((row.id, "closed_on_reboot"))
                elif silent_after is not None and row.last_message_at is not None and (
                    now - row.last_message_at >= timedelta(seconds=silent_after)
                ):
                    due.append((row.id, "closed_by_timeout"))
        closed = 0
        for session_id, flag in due:
            if await self.close(session_id, flag=flag):
                closed += 1
        return closed

    async def run(self, bus: Any | None = None) -> None:
        """Until cancelled: the sweep every `sweep_interval_s`, and at once after a boot."""
        wake = asyncio.Event()
        listener = None
        if bus is not None:
            listener = asyncio.create_task(self._boots(bus, wake), name="charging-boots")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.options.sweep_interval_s)
                wake.clear()
                try:
                    await self.sweep()
                except Exception:
                    log.warning("charging.sweep_failed", exc_info=True)
        finally:
            if listener is not None:
                listener.cancel()

    async def _boots(self, bus: Any, wake: asyncio.Event) -> None:
        async with bus.subscribe("station.*") as events:
            async for event in events:
                if event.topic.endswith(".boot"):
                    wake.set()

    # -- commands after commit ----------------------------------------------------------------

    def _send(self, after: _After) -> None:
        if self.commands is None:
            return
        for station_id, action, payload in after.calls:
            self._spawn(self._call(station_id, action, payload), f"{station_id}:{action}")
        for station_id, station_tx_id in after.stops:
            self._spawn(self._stop(station_id, station_tx_id), f"{station_id}:stop")

    async def _call(self, station_id: str, action: str, payload: dict[str, Any]) -> None:
        assert self.commands is not None
        await self.commands.call(station_id, action, payload,
                                 timeout=self.options.command_timeout_s)

    async def _stop(self, station_id: str, station_tx_id: str) -> None:
        assert self.commands is not None
        accepted = await self.commands.remote_stop(station_id, station_tx_id)
        log.info("charging.remote_stop", station_id=station_id, transaction_id=station_tx_id,
                 accepted=accepted)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Display and stop commands move no money; a stop not delivered is asked again.
            log.warning("charging.command_failed", task=task.get_name(),
                        error=repr(task.exception()))

    async def drain(self) -> None:
        """Wait for the commands in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _point_values(
    session_id: int, source: str, idx: int, kind: str, at: datetime,
    station_at: datetime | None, received_at: datetime, implausible: bool,
    register_wh: int | None, state: str | None, seq_no: int | None,
) -> dict[str, Any]:
    return {
        "session_id": session_id, "source": source[:200], "idx": idx, "kind": kind, "at": at,
        "station_at": station_at, "received_at": received_at, "implausible": implausible,
        "register_wh": register_wh, "state": state[:24] if state else None, "seq_no": seq_no,
    }


async def session_usage(db: AsyncSession, row: ChargingSession) -> BuiltUsage | None:
    """The session's usage from its stored points (and, for 1.6, the connector's status
    notifications), bounded by its start and end."""
    stored: Sequence[ChargingPoint] = (
        await db.exec(select(ChargingPoint).where(col(ChargingPoint.session_id) == row.id))
    ).all()
    points: list[Point] = [Point(p.at, p.register_wh, p.state) for p in stored]
    if row.protocol == PROTOCOL_16 and row.connector_id is not None:
        points.extend(await _status_points(db, row))
    return build_usage(points, start=row.started_at, end=row.ended_at)


async def _status_points(db: AsyncSession, row: ChargingSession) -> Iterable[Point]:
    query = (
        select(StatusEvent)
        .where(col(StatusEvent.station_id) == row.station_id)
        .where(col(StatusEvent.connector_id) == row.connector_id)
    )
    if row.started_at is not None:
        # Received before the session began cannot describe it (station clocks aside).
        query = query.where(col(StatusEvent.received_at) >= row.started_at - timedelta(hours=1))
    result = []
    for status in (await db.exec(query)).all():
        arrival = status.received_at or status.timestamp
        if arrival is None:
            continue
        at, _ = effective_time(status.timestamp, arrival)
        result.append(Point(at, None, status.status))
    return result

