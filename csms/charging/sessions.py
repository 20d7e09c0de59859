"""Prepaid charging: OCPP transactions of both versions on the one paid-use flow of `billing`.

This is the OCPP adapter. It turns what a station says (`csms.ocpp.events.TransactionEvent`)
into the flow's terms: a charging session (the OCPP-only facts: transaction ids, connector,
seqNo) linked to a paid use, the message's readings as usage points, and the moments a use
starts, grows and ends. Who pays, the hold, the rating, the stop when credit runs out and the
settlement are the flow's (`billing.PaidUseFlow`).

`BillingService.transaction_event` is the OCPP station service's `SessionHook`;
`BillingService.authorize` its `Authorizer`. Each message is one flow `Unit` (one database
transaction); a crash at any point leaves either all of it or none, and the station's
retransmission then does the rest. Money keys are derived from station + transaction (hold,
settlement) and from the message (each raise), as `billing.flow` describes.

Sessions a station does not close are closed by the sweep: after a reboot the station reported,
after silence, or when 2.0.1 messages a seqNo gap says are missing did not come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import (
    BuiltUsage,
    FlowOptions,
    NewPoint,
    PaidUse,
    PaidUseFlow,
    Unit,
    effective_time,
    flag,
    usage_of,
)
from csms.charging.authorizer import authorize_badge, station_tariff
from csms.charging.charger import (
    KIND,
    OcppCharger,
    StationCommands,
    california_pricing,
    connector_states,
)
from csms.charging.closing import (
    CLOSED_NOT_ONGOING,
    OpenSession,
    PlaceStatus,
    closure_reason,
    no_longer_ongoing,
)
from csms.charging.cost_messages import cost_updated, set_user_price
from csms.charging.models import ChargingSession, ChargingStationConfig, SessionStatus
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
from csms.ocpp.models import ConnectorStatus, OcppStation, Transaction
from csms.ocpp.wire import ErrorKind, OcppCallError
from wallet.ledger import dialect_insert

log = structlog.get_logger("csms.charging")

Clock = Callable[[], datetime]

__all__ = ["BillingOptions", "BillingService", "StationCommands", "session_usage"]


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
    # A connector (EVSE) reported Available closes its open session after this long (a
    # StopTransaction / Ended sent just after the status still ends it the regular way).
    available_grace_s: float = 30.0
    # A 2.0.1 session silent this long is asked about (GetTransactionStatus), at most once
    # per this long; the answer that the station no longer has it closes it.
    probe_after_s: float = 900.0

    def flow(self) -> FlowOptions:
        return FlowOptions(initial_hold=self.initial_hold, stop_retry_s=self.stop_retry_s)


async def session_usage(db: AsyncSession, use: PaidUse) -> BuiltUsage | None:
    """A charging session's usage: its points and, for 1.6, the connector's states."""
    return await usage_of(db, use, connector_states)


class BillingService:
    """One per node; plugged into the OCPP server as authorizer and session hook."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        commands: StationCommands | None = None,
        options: BillingOptions | None = None,
        flow: PaidUseFlow | None = None,
    ) -> None:
        self._sessions = sessions
        self.clock = clock
        self.commands = commands
        self._options = options or BillingOptions()
        # When each open 2.0.1 session was last asked about (GetTransactionStatus).
        self._probed: dict[int, datetime] = {}
        self.flow = flow or PaidUseFlow(sessions, clock=clock, options=self._options.flow())
        self.flow.register(
            KIND,
            OcppCharger(sessions, commands, timeout_s=self._options.command_timeout_s),
            connector_states,
        )

    @property
    def options(self) -> BillingOptions:
        return self._options

    @options.setter
    def options(self, options: BillingOptions) -> None:
        self._options = options
        self.flow.options = options.flow()

    # -- authorisation (the OCPP `Authorizer`) ------------------------------------------------

    async def authorize(
        self, session: AsyncSession, station: StationRef, token: IdToken, now: datetime,
        *, starts: bool = False,
    ) -> AuthDecision:
        decision = await authorize_badge(self.flow, session, station, token, now, starts=starts)
        if (
            decision.accepted
            and station.protocol == PROTOCOL_16
            and self.commands is not None
            and await california_pricing(session, station.station_id)
        ):
            payload = set_user_price(token.value, decision.personal_message or "")
            self.flow.run_device_request(
                self._call(station.station_id, "DataTransfer", payload),
                f"{station.station_id}:DataTransfer",
            )
        return decision

    # -- the session hook ---------------------------------------------------------------------

    async def transaction_event(self, event: TransactionEvent) -> TransactionAnswer | None:
        async with self.flow.unit() as unit:
            found = await self._session_for(unit, event)
            if found is None:
                return None
            session, use = found
            return await self._apply(unit, session, use, event)

    async def _lock_session(self, db: AsyncSession, session_id: int) -> ChargingSession | None:
        return (
            await db.exec(
                select(ChargingSession)
                .where(col(ChargingSession.id) == session_id)
                .execution_options(populate_existing=True)
            )
        ).first()

    async def _session_for(
        self, unit: Unit, event: TransactionEvent
    ) -> tuple[ChargingSession, PaidUse] | None:
        db, now = unit.db, unit.now
        session = await self._lock_session(db, event.transaction_id)
        if session is not None:
            use = await self.flow.lock(db, session.use_id)
            assert use is not None
            return session, use
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
        device = event.station.device()
        site = await db.get(Site, event.station.site_id)
        tariff = await station_tariff(db, event.station)
        use = await self.flow.open(
            unit, device, tx.station_tx_id, tariff=tariff,
            currency=str(tariff.get("currency") or (site.currency if site else "EUR")),
        )
        await db.exec(
            dialect_insert(db, ChargingSession).values(
                id=tx.id, use_id=use.id, station_id=event.station.station_id,
                station_tx_id=tx.station_tx_id, protocol=event.station.protocol,
                evse_id=tx.evse_id if tx.evse_id is not None else event.evse_id,
                connector_id=(
                    tx.connector_id if tx.connector_id is not None else event.connector_id
                ),
                received_at=now, last_message_at=now,
            ).on_conflict_do_nothing()
        )
        session = await self._lock_session(db, event.transaction_id)
        assert session is not None
        if tx.start_key is not None and tx.started_at is not None:
            # 1.6: the StartTransaction as stored by the OCPP layer (also when its hook failed).
            start_at, implausible = effective_time(tx.started_at, tx.received_at or now)
            await self.flow.add_points(unit, use, [NewPoint(
                f"{session.station_id}:{session.station_tx_id}:start", 0, "start", start_at,
                tx.started_at, tx.received_at or now, implausible, tx.meter_start_wh,
            )])
            use.started_at = start_at
            session.meter_start_wh = tx.meter_start_wh
            if tx.id_tag:
                await self.flow.bind_badge(unit, use, device, tx.id_tag)
        return session, use

    async def _apply(
        self, unit: Unit, session: ChargingSession, use: PaidUse, event: TransactionEvent
    ) -> TransactionAnswer:
        db, now = unit.db, unit.now
        completed_before = use.status == SessionStatus.COMPLETED
        session.last_message_at = now
        if event.evse_id is not None and session.evse_id is None:
            session.evse_id = event.evse_id
        if event.connector_id is not None and session.connector_id is None:
            session.connector_id = event.connector_id
        db.add(session)
        if event.extra.get("offline"):
            flag(use, "offline")
        points = self._points_of(session, event, now)
        inserted = await self.flow.add_points(unit, use, points)
        if completed_before:
            if inserted:
                flag(use, "meter_after_stop")
                log.info("charging.after_stop", session_id=session.id,
                         station_id=session.station_id, points=inserted)
            return self._answer(use, event)
        if event.id_token is not None:
            await self.flow.bind_badge(unit, use, event.station.device(),
                                       event.id_token.value)
        seq = event.extra.get("seq_no")
        if event.phase is TransactionPhase.STARTED and session.protocol != PROTOCOL_16:
            start = min(p.at for p in points) if points else None
            if start is not None and (use.started_at is None or start < use.started_at):
                use.started_at = start
            if isinstance(seq, int):
                session.start_seq = seq
        if event.phase is TransactionPhase.ENDED and use.ended_at is None:
            use.ended_at = max(p.at for p in points) if points else now
            session.ended_received_at = now
            use.stop_reason = (event.stop_reason or "")[:32] or None
            if isinstance(seq, int):
                session.end_seq = seq
        ahead: tuple[tuple[str, dict[str, Any]], ...] = ()
        if use.ended_at is not None:
            if await self._complete(db, session, use):
                await self.flow.settle(unit, use)
            else:
                use.status = SessionStatus.ENDING
                flag(use, "seq_gap")
                await self.flow.progress(unit, use, cause=event.message_key, running=False)
        elif session.protocol == PROTOCOL_16:
            await self.flow.progress(unit, use, cause=event.message_key, running=True)
        else:
            # 2.0.1: the new running cost goes on the wire ahead of this message's answer, not
            # after it (a station that reads its display on the answer, or ends right after,
            # would see the cost of the message before).
            shown = await self.flow.progress(unit, use, cause=event.message_key, running=True,
                                             show=False)
            if shown is not None:
                ahead = (("CostUpdated",
                          cost_updated(session.station_tx_id, shown.gross, shown.currency)),)
        return replace(self._answer(use, event), ahead=ahead)

    def _answer(self, use: PaidUse, event: TransactionEvent) -> TransactionAnswer:
        decision = None
        # The use's own badge is answered with the use's standing; another badge (a stop by a
        # household member or the master pass) with its own (the authorizer's, in the service).
        if (event.id_token is not None and use.auth_status is not None
                and event.id_token.value[:64] == use.id_tag):
            decision = AuthDecision(AuthStatus(use.auth_status), account_id=use.account_id)
        total = None
        if event.phase is TransactionPhase.ENDED:
            # Every answer to Ended carries the cost (issue 14): the final bill, or, while
            # messages a seqNo gap says are missing are awaited, the cost so far; nothing is
            # billed for a free use or one nobody pays for.
            if use.free or use.account_id is None:
                total = Decimal("0.00")
            elif use.status == SessionStatus.COMPLETED:
                total = use.gross
            else:
                total = use.live_gross or Decimal("0.00")
        return TransactionAnswer(decision, total, currency=use.currency)

    def _points_of(
        self, session: ChargingSession, event: TransactionEvent, now: datetime
    ) -> list[NewPoint]:
        seq = event.extra.get("seq_no")
        seq_no = seq if isinstance(seq, int) else None
        kind = {
            TransactionPhase.STARTED: "start",
            TransactionPhase.ENDED: "stop",
        }.get(event.phase, "meter")
        points: list[NewPoint] = []
        if session.protocol == PROTOCOL_16:
            if event.phase is TransactionPhase.STARTED:
                return points  # taken from the stored transaction in `_session_for`
            if event.phase is TransactionPhase.ENDED:
                at, bad = effective_time(event.timestamp, now)
                points.append(NewPoint(event.message_key, 0, "stop", at, event.timestamp, now,
                                       bad, event.meter_wh))
        else:
            at, bad = effective_time(event.timestamp, now)
            points.append(NewPoint(event.message_key, 0, kind, at, event.timestamp, now, bad,
                                   None, event.charging_state, seq_no))
        for index, reading in enumerate(event.readings, start=1):
            register = reading.energy_wh()
            if register is None:
                continue
            at, bad = effective_time(reading.timestamp, now)
            points.append(NewPoint(event.message_key, index, "meter", at, reading.timestamp,
                                   now, bad, register, None, seq_no))
        return points

    async def _complete(self, db: AsyncSession, session: ChargingSession, use: PaidUse) -> bool:
        """Whether every message up to the end is here (2.0.1 seqNo; 1.6 has none)."""
        if session.protocol == PROTOCOL_16 or session.end_seq is None:
            return True
        if session.start_seq is None:
            return False
        seqs = await self.flow.seq_numbers(db, use)
        return all(seq in seqs for seq in range(session.start_seq, session.end_seq + 1))

    # -- closing sessions the station does not close ------------------------------------------

    async def close(self, session_id: int, *, flag: str, staff: str | None = None) -> bool:
        """Close an open session from its last meter value and settle it; False if it was not
        open. Used for reboots, silence, missing messages and staff stops."""
        async with self._sessions() as db:
            session = await db.get(ChargingSession, session_id)
        if session is None:
            return False
        return await self.flow.close(session.use_id, flag_as=flag, staff=staff)

    async def sweep(self) -> int:
        """Close what is due: sessions of rebooted stations, silent stations, and 2.0.1
        sessions whose missing messages did not come. Returns how many were closed."""
        now = self.clock()
        due: list[tuple[int, str]] = []
        async with self._sessions() as db:
            rows = (
                await db.exec(
                    select(ChargingSession, PaidUse, OcppStation.last_boot_at,
                           ChargingStationConfig)
                    .join(PaidUse, col(PaidUse.id) == ChargingSession.use_id)
                    .join(OcppStation, col(OcppStation.station_id) == ChargingSession.station_id,
                          isouter=True)
                    .join(ChargingStationConfig,
                          col(ChargingStationConfig.station_id) == ChargingSession.station_id,
                          isouter=True)
                    .where(col(PaidUse.status) != SessionStatus.COMPLETED)
                )
            ).all()
            for session, use, last_boot, config in rows:
                assert use.id is not None
                reboot_after = config.reboot_close_after_s if config else 0
                silent_after = config.silent_close_after_s if config else None
                if use.status == SessionStatus.ENDING:
                    waited = now - (session.ended_received_at or now)
                    if waited >= timedelta(seconds=self.options.gap_wait_s):
                        due.append((use.id, "seq_gap_timeout"))
                    continue
                if last_boot is not None and session.received_at is not None and (
                    last_boot > session.received_at
                    and now - last_boot >= timedelta(seconds=reboot_after)
                ):
                    due.append((use.id, "closed_on_reboot"))
                elif silent_after is not None and session.last_message_at is not None and (
                    now - session.last_message_at >= timedelta(seconds=silent_after)
                ):
                    due.append((use.id, "closed_by_timeout"))
            chosen = {use_id for use_id, _ in due}
            still_open = [
                _open_session(session) for session, use, _, _ in rows
                if use.id not in chosen and use.status != SessionStatus.ENDING
                and session.received_at is not None and session.last_message_at is not None
            ]
            due += await self._over_by_station_reports(db, still_open, now)
        closed = 0
        for use_id, reason in due:
            if await self.flow.close(use_id, flag_as=reason):
                closed += 1
        if self.commands is not None:
            closed += await self._probe_silent(rows, now)
        return closed

    async def _over_by_station_reports(
        self, db: AsyncSession, sessions: list[OpenSession], now: datetime
    ) -> list[tuple[int, str]]:
        """Open sessions the station's own reports say are over (`closing.closure_reason`)."""
        if not sessions:
            return []
        stations = sorted({s.station_id for s in sessions})
        oldest = min(s.received_at for s in sessions)
        statuses = [
            PlaceStatus(row.station_id, row.evse_id, row.status, row.received_at)
            for row in (await db.exec(select(ConnectorStatus).where(
                col(ConnectorStatus.station_id).in_(stations)))).all()
            if row.received_at is not None
        ]
        others = [
            _open_session(session)
            for session in (await db.exec(select(ChargingSession).where(
                col(ChargingSession.station_id).in_(stations),
                col(ChargingSession.received_at) > oldest))).all()
            if session.received_at is not None and session.last_message_at is not None
        ]
        grace = timedelta(seconds=self.options.available_grace_s)
        due = []
        for session in sessions:
            reason = closure_reason(session, statuses, others, now, available_grace=grace)
            if reason is not None:
                due.append((session.use_id, reason))
        return due

    async def _probe_silent(self, rows: Sequence[Any], now: datetime) -> int:
        """Ask 2.0.1 stations about sessions silent for `probe_after_s`; close those the
        station no longer has (GetTransactionStatus, E14)."""
        closed = 0
        quiet = timedelta(seconds=self.options.probe_after_s)
        # Only open sessions are remembered: the closed ones' entries go.
        self._probed = {use.id: self._probed[use.id] for _, use, _, _ in rows
                        if use.id in self._probed}
        for session, use, _, _ in rows:
            if (session.protocol == PROTOCOL_16 or use.status == SessionStatus.ENDING
                    or session.last_message_at is None or now - session.last_message_at < quiet):
                continue
            assert use.id is not None
            asked = self._probed.get(use.id)
            if asked is not None and now - asked < quiet:
                continue
            self._probed[use.id] = now
            try:
                answer = await self.commands.call(  # type: ignore[union-attr]
                    session.station_id, "GetTransactionStatus",
                    {"transactionId": session.station_tx_id},
                    timeout=self.options.command_timeout_s)
            except Exception as error:  # offline or refusing: asked again later
                log.info("charging.probe_failed", station_id=session.station_id,
                         session_id=session.id, error=str(error))
                continue
            if no_longer_ongoing(answer) and await self.flow.close(
                    use.id, flag_as=CLOSED_NOT_ONGOING):
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
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.sweep_interval_s):
                        await wake.wait()
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

    # -- commands that are not the flow's -----------------------------------------------------

    async def _call(self, station_id: str, action: str, payload: dict[str, Any]) -> None:
        assert self.commands is not None
        await self.commands.call(station_id, action, payload,
                                 timeout=self.options.command_timeout_s)

    async def drain(self) -> None:
        """Wait for the commands in flight (tests, shutdown)."""
        await self.flow.drain()

    async def stop(self) -> None:
        await self.flow.stop()



def _open_session(session: ChargingSession) -> OpenSession:
    assert session.received_at is not None and session.last_message_at is not None
    return OpenSession(session.use_id, session.station_id, session.protocol, session.evse_id,
                       session.connector_id, session.received_at, session.last_message_at)
