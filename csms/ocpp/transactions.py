"""Transaction messages: MeterValues, 1.6 StartTransaction and StopTransaction, and 2.0.1
TransactionEvent, stored and handed to the session hook (billing plugs in there).

Part of the station service (`StationService.transactions`): the same shared transactions
(csms.ocpp.group_commit), clock, authorizer and hook. A 1.6 transaction id is the row's id; a
retransmitted start or stop, or a repeated seqNo, is recognised and stored once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.ocpp.batch_reads import badge_read, reservations_read
from csms.ocpp.events import (
    PROTOCOL_16,
    AuthDecision,
    IdToken,
    MeterReading,
    MeterReport,
    StationRef,
    TransactionAnswer,
    TransactionEvent,
    TransactionPhase,
)
from csms.ocpp.group_commit import BatchRead, write_with_batch
from csms.ocpp.models import Transaction, TransactionMessage
from csms.ocpp.reservation_book import reservation_gate
from csms.ocpp.reservations import Reservation, refused
from csms.ocpp.rows import (
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

if TYPE_CHECKING:
    from csms.ocpp.service import StationService

_FOREIGN: Any = object()


def _foreign_error(station_tx_id: str | None) -> OcppCallError:
    return OcppCallError(
        ErrorKind.PROPERTY, f"transactionId {station_tx_id} is not a transaction of this station"
    )


class StationTransactions:
    """The transaction messages of every station of a node; one per `StationService`."""

    def __init__(self, service: StationService) -> None:
        self._service = service

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
            await write_with_batch(session, self._service.rows.meter_value, rows)

    async def meter_values(self, station: StationRef, report: MeterReport) -> None:
        """MeterValues; with a transaction id they also reach the session hook as Updated."""
        self._service.seen(station.station_id)

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
        transaction = await self._service.batched(write, reads)
        if transaction is _FOREIGN:
            raise _foreign_error(report.station_tx_id)
        if transaction is not None and self._service.session_hook:
            stamp = report.readings[-1].timestamp if report.readings else None
            await self._service.session_hook.transaction_event(
                TransactionEvent(
                    station=station,
                    phase=TransactionPhase.UPDATED,
                    transaction_id=transaction.id,
                    station_tx_id=transaction.station_tx_id,
                    message_key=(
                        f"{station.station_id}:{transaction.station_tx_id}:meter:"
                        f"{stamp.isoformat() if stamp else self._service.clock().isoformat()}"
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
        return station.protocol == PROTOCOL_16 and self._service.session_hook is not None

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
        if self._service.session_hook is None:
            return TransactionAnswer()
        return await self._service.session_hook.transaction_event(event) or TransactionAnswer()

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
        self._service.seen(station.station_id)
        stamp = timestamp.isoformat() if timestamp else ""
        start_key = f"{connector_id}|{token.value}|{stamp}|{meter_start_wh}"
        start = (station.station_id, start_key)
        now = self._service.clock()

        async def write(
            session: AsyncSession,
        ) -> tuple[int, str, bool, AuthDecision, Reservation | None]:
            decision = await self._service.authorizer(session, station, token, now, starts=True)
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

        reads = (badge_read(station, token), BatchRead(starts_ahead, start),
                 reservations_read(station, now))
        written = await self._service.batched(write, reads)
        tx_pk, station_tx_id, duplicate, decision, blocking = written
        self._service.log_authorize(station, token, decision)
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
        self._service.seen(station.station_id)
        now = self._service.clock()

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
            decision = None
            if token is not None:
                decision = await self._service.authorizer(session, station, token, now)
            return station_tx_id, tx_pk, connector, duplicate, decision

        stopped = BatchRead(named_ahead, (station.station_id, str(transaction_id)))
        reads = (stopped,) if token is None else (stopped, badge_read(station, token))
        written = await self._service.batched(write, reads)
        if written is None:
            raise _foreign_error(str(transaction_id))
        station_tx_id, tx_pk, connector, duplicate, decision = written
        if token is not None and decision is not None:
            self._service.log_authorize(station, token, decision)
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
        self._service.seen(station.station_id)
        now = self._service.clock()
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
                await self._service.authorizer(session, station, token, now, starts=starts)
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
            reads.append(badge_read(station, token))
        if gated:
            reads.append(reservations_read(station, now))
        tx_pk, duplicate, decision, blocking = await self._service.batched(write, reads)
        if token is not None and decision is not None:
            self._service.log_authorize(station, token, decision)
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
