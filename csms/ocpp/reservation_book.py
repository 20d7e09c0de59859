"""Reservations kept: the `reservation` table, the operator's ReserveNow / CancelReservation, and
the check the station service makes at Authorize and at the start of a transaction.

What a reservation allows is decided in `csms.ocpp.reservations` (pure); this module reads and
writes the rows and talks to stations through `StationGateway`, from any node.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import structlog
from sqlalchemy import Column, Index, bindparam
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from column_types import UTCDateTime
from csms.bus.errors import StationNotConnected
from csms.inventory.models import Station
from csms.ocpp.commands import InvalidPayload, StationGateway, check_command
from csms.ocpp.events import AuthDecision, IdToken, StationRef
from csms.ocpp.reservations import (
    ACCEPTED,
    Ending,
    Reservation,
    in_the_way,
    request_problems,
    reserve_now_payload,
    state,
    used_by,
)
from rfid.registry import get_badge
from rfid.uid import Uid, render

log = structlog.get_logger("csms.ocpp.reservations")


class ReservationRow(SQLModel, table=True):
    """One ReserveNow sent (its id is the reservationId) and what became of it."""

    __tablename__ = "reservation"
    __table_args__ = (Index("ix_reservation_station_open", "station_id", "ended"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=64)
    protocol: str = Field(max_length=16)
    # 1.6 connectorId / 2.0.1 evseId; None: any one connector of the station.
    connector_id: int | None = None
    # As sent to the station (its idtag_format); the registry's UID beside it.
    id_tag: str = Field(max_length=64)
    badge_uid: str | None = Field(default=None, max_length=32)
    account_id: str | None = Field(default=None, max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # The station's ReserveNow answer; None while (or when) none came.
    answer: str | None = Field(default=None, max_length=16)
    # `reservations.Ending`; None while it may still hold its connector.
    ended: str | None = Field(default=None, max_length=16)
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # Our ocpp_transaction id of the transaction that used it.
    transaction_id: int | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def reservation_of(row: ReservationRow) -> Reservation:
    assert row.id is not None
    return Reservation(
        id=row.id, station_id=row.station_id, connector_id=row.connector_id,
        id_tag=row.id_tag, account_id=row.account_id, expires_at=row.expires_at,
        answer=row.answer, ended=Ending(row.ended) if row.ended else None,
    )


def reservation_json(row: ReservationRow, now: datetime) -> dict[str, Any]:
    """A row for the API and the CLI."""
    return {
        "id": row.id, "station_id": row.station_id, "connector": row.connector_id or 0,
        "id_tag": row.id_tag, "badge_uid": row.badge_uid, "account_id": row.account_id,
        "expires_at": row.expires_at.isoformat(), "answer": row.answer,
        "state": state(reservation_of(row), now),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "transaction_id": row.transaction_id, "created_at": row.created_at.isoformat(),
    }


# -- what the station service asks ----------------------------------------------------------


_TABLE: Any = ReservationRow.__table__  # type: ignore[attr-defined]
# Whether a station holds any open reservation: asked at every Authorize and start, nearly
# always answered "no", so a Core statement built once rather than an ORM query each time.
_ANY_OPEN: Final = (
    core_select(_TABLE.c.id)
    .where(_TABLE.c.station_id == bindparam("station_id"), _TABLE.c.ended.is_(None),
           _TABLE.c.expires_at > bindparam("now", type_=UTCDateTime()))
    .limit(1)
)


# Stations of a batch that held no open reservation, and as of when (`check_open_ahead`).
_FREE_AHEAD = "csms.reservations.free"
_OPEN_AMONG: Final = (
    core_select(_TABLE.c.station_id).distinct()
    .where(_TABLE.c.station_id.in_(bindparam("stations", expanding=True)),
           _TABLE.c.ended.is_(None),
           _TABLE.c.expires_at > bindparam("now", type_=UTCDateTime()))
)


async def check_open_ahead(session: AsyncSession, questions: list[tuple[str, datetime]]) -> None:
    """Which of these stations hold an open reservation, in one query for a batch of station
    messages (each asks for its station at its moment): the stations holding none are left in
    `session` for the gates that follow. Asked as of the earliest moment, a station that held
    none then holds none at any later one (reservations are made outside these batches)."""
    since = min(now for _, now in questions)
    # As asked, repeats included (padded by the batch: see `group_commit.padded`).
    stations = [station_id for station_id, _ in questions]
    connection = await session.connection()
    held: set[str] = set((await connection.execute(
        _OPEN_AMONG, {"stations": stations, "now": since})).scalars())
    free: dict[str, datetime] = session.info.setdefault(_FREE_AHEAD, {})
    free.update((station_id, since) for station_id in stations if station_id not in held)


async def _open_rows(session: AsyncSession, station_id: str, now: datetime) -> list[ReservationRow]:
    free_since = session.info.get(_FREE_AHEAD, {}).get(station_id)
    if free_since is not None and now >= free_since:
        return []
    connection = await session.connection()
    found = await connection.execute(_ANY_OPEN, {"station_id": station_id, "now": now})
    if found.first() is None:
        return []
    return list((await session.exec(
        select(ReservationRow)
        .where(col(ReservationRow.station_id) == station_id)
        .where(col(ReservationRow.ended).is_(None))
        .where(col(ReservationRow.expires_at) > now)
    )).all())


async def reservation_gate(
    session: AsyncSession,
    station: StationRef,
    *,
    connector: int | None,
    token: IdToken | None,
    decision: AuthDecision | None,
    now: datetime,
    starting: int | None = None,
    reservation_id: int | None = None,
) -> Reservation | None:
    """The reservation that keeps this badge off `connector` (None: off the whole station, for
    an Authorize), or None. With `starting` (our id of a transaction starting there), the
    reservation it uses (the one the station names in `reservation_id`, else the badge's own)
    is marked used in `session`.

    The caller turns the answer into the badge's refusal with `reservations.refused`, after
    any session hook has had its say, so that nothing answers Accepted past a reservation.
    """
    rows = await _open_rows(session, station.station_id, now)
    if not rows:
        return None
    reservations = [reservation_of(row) for row in rows]
    account = decision.account_id if decision is not None else None
    blocking = None
    if token is not None:
        blocking = in_the_way(
            reservations, connector=connector, connectors=station.connectors,
            id_tag=token.value, account_id=account, now=now,
        )
    if starting is not None:
        used = used_by(
            reservations, reservation_id=reservation_id, connector=connector,
            id_tag=token.value if token is not None else None, account_id=account, now=now,
        )
        if used is not None:
            row = next(r for r in rows if r.id == used.id)
            row.ended, row.ended_at, row.transaction_id = Ending.USED.value, now, starting
            session.add(row)
            log.info("ocpp.reservation_used", station_id=station.station_id,
                     reservation_id=used.id, transaction_id=starting)
    if blocking is not None:
        log.info("ocpp.reservation_refused", station_id=station.station_id,
                 reservation_id=blocking.id, id_tag=token.value if token else None,
                 connector=connector)
    return blocking


async def station_ended(
    session: AsyncSession, station_id: str, reservation_id: int, ending: Ending, now: datetime
) -> bool:
    """A station ended a reservation on its own (2.0.1 ReservationStatusUpdate); False when it
    is not one of its open ones."""
    row = await session.get(ReservationRow, reservation_id)
    if row is None or row.station_id != station_id or row.ended is not None:
        return False
    row.ended, row.ended_at = ending.value, now
    session.add(row)
    log.info("ocpp.reservation_ended", station_id=station_id, reservation_id=reservation_id,
             ending=ending.value)
    return True


# -- what operators do ----------------------------------------------------------------------


class ReservationProblem(ValueError):
    """A request that cannot be: every problem starts with its field. Nothing was sent."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class ReservationNotFound(LookupError):
    def __init__(self, station_id: str, reservation_id: int) -> None:
        super().__init__(f"station {station_id!r} has no reservation {reservation_id}")


class ReservationNotOpen(ValueError):
    """Cancelling a reservation that holds nothing any more (used, ended, refused, expired)."""


async def station_reservations(
    session: AsyncSession, station_id: str, *, limit: int = 100
) -> list[ReservationRow]:
    """The station's reservations, newest first."""
    return list((await session.exec(
        select(ReservationRow)
        .where(col(ReservationRow.station_id) == station_id)
        .order_by(col(ReservationRow.id).desc())
        .limit(limit)
    )).all())


async def reserve(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StationGateway,
    station: Station,
    *,
    connector: int,
    badge_uid: str,
    expires_at: datetime,
    now: datetime,
    timeout: float | None = None,
) -> ReservationRow:
    """Reserve `connector` (0: any one) of `station` for a badge of its site until
    `expires_at`: stored, sent as ReserveNow, the station's answer stored.

    Raises ReservationProblem (nothing stored or sent); the gateway's errors after the row was
    stored: StationNotConnected (the row is removed again: nothing was sent), or a timeout or
    station error (the row stays, unanswered, as the station may hold it).
    """
    problems = request_problems(
        connector=connector, connectors=station.connectors, expires_at=expires_at, now=now
    )
    async with sessions() as session:
        try:
            badge = await get_badge(session, station.site_id, badge_uid)
        except ValueError as error:
            problems.append(f"id_tag: {error}")
            badge = None
        if problems or badge is None:
            raise ReservationProblem(problems)
        row = ReservationRow(
            station_id=station.id, protocol=station.protocol,
            connector_id=connector or None,
            id_tag=render(Uid(bytes.fromhex(badge.uid)), station.idtag_format),
            badge_uid=badge.uid, account_id=badge.account_id, expires_at=expires_at,
            created_at=now,
        )
        # Checked with a stand-in id before anything is stored (a too long idTag, say).
        draft = Reservation(
            id=0, station_id=row.station_id, connector_id=row.connector_id, id_tag=row.id_tag,
            account_id=row.account_id, expires_at=row.expires_at,
        )
        try:
            check_command(
                station.protocol, "ReserveNow", reserve_now_payload(station.protocol, draft)
            )
        except InvalidPayload as error:
            raise ReservationProblem([p.as_text() for p in error.problems]) from None
        session.add(row)
        await session.commit()
        await session.refresh(row)
    payload = reserve_now_payload(station.protocol, reservation_of(row))
    try:
        reply = await gateway.call(station.id, "ReserveNow", payload, timeout=timeout)
    except StationNotConnected:
        async with sessions() as session:
            stored = await session.get(ReservationRow, row.id)
            if stored is not None:
                await session.delete(stored)
                await session.commit()
        raise
    async with sessions() as session:
        stored = await session.get(ReservationRow, row.id)
        assert stored is not None
        stored.answer = str(reply.get("status"))[:16]
        session.add(stored)
        await session.commit()
        await session.refresh(stored)
    log.info("ocpp.reserved", station_id=station.id, reservation_id=row.id,
             connector=connector, answer=stored.answer)
    return stored


async def cancel(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StationGateway,
    station_id: str,
    reservation_id: int,
    *,
    now: datetime,
    timeout: float | None = None,
) -> tuple[ReservationRow, str]:
    """CancelReservation; the reservation ends (cancelled) when the station accepts. Returns
    the row and the station's answer (Accepted or Rejected)."""
    async with sessions() as session:
        row = await session.get(ReservationRow, reservation_id)
        if row is None or row.station_id != station_id:
            raise ReservationNotFound(station_id, reservation_id)
        current = reservation_of(row)
        # An unanswered one may be held by the station all the same: it may be cancelled too.
        if current.ended is not None or current.answer not in (ACCEPTED, None) or (
            now >= current.expires_at
        ):
            raise ReservationNotOpen(
                f"reservation {reservation_id} is {state(current, now)}: nothing to cancel"
            )
    reply = await gateway.call(
        station_id, "CancelReservation", {"reservationId": reservation_id}, timeout=timeout
    )
    answer = str(reply.get("status"))
    async with sessions() as session:
        stored = await session.get(ReservationRow, reservation_id)
        assert stored is not None
        if answer == ACCEPTED and stored.ended is None:
            stored.ended, stored.ended_at = Ending.CANCELLED.value, now
            session.add(stored)
            await session.commit()
            await session.refresh(stored)
    log.info("ocpp.reservation_cancel", station_id=station_id, reservation_id=reservation_id,
             answer=answer)
    return stored, answer

