"""Reservations over HTTP: an operator reserves a connector of a station for a badge (ReserveNow),
lists a station's reservations, cancels one (CancelReservation).

The station's answer to ReserveNow is stored with the reservation; only an Accepted one keeps
other badges off the connector (see `csms.ocpp.reservations`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from csms.api.deps import DbSession, request_now
from csms.api.problems import invalid, problem_responses
from csms.api.routes.stations import Operator, _gateway, _send, _station
from csms.ocpp.reservation_book import (
    ReservationNotFound,
    ReservationNotOpen,
    ReservationProblem,
    cancel,
    reservation_json,
    reserve,
    station_reservations,
)

router = APIRouter(tags=["stations"])

_STATION_ERRORS = problem_responses(
    409, 502, 503, 504, why_409="station not connected",
    why_504="no answer in time (the reservation is kept, unanswered)",
)


class ReservationRequest(BaseModel):
    connector: int = Field(
        default=0, description="1.6 connectorId / 2.0.1 evseId; 0 (default): any one connector "
        "of the station")
    id_tag: str = Field(description="the badge's UID in hex, as registered on the site")
    expires_at: datetime | None = Field(
        default=None, description="when the reservation ends (with its time zone)")
    minutes: int | None = Field(
        default=None, gt=0, le=7 * 24 * 60, description="or: for this many minutes from now")


@router.post(
    "/stations/{station_id}/reservations",
    status_code=status.HTTP_201_CREATED,
    summary="Reserve a connector for a badge (ReserveNow); the station's answer is stored",
    responses={
        201: {"description": "the reservation with the station's `answer`; only an Accepted "
                             "one is `active`"},
        404: {"description": "unknown station"},
        422: {"description": "bad connector, badge or expiry; nothing was sent"},
        **_STATION_ERRORS,
    },
)
async def reserve_route(
    station_id: str,
    body: ReservationRequest,
    request: Request,
    session: DbSession,
    principal: Operator,
    timeout: Annotated[float, Query(gt=0, le=300)] = 30.0,
) -> Any:
    station = await _station(session, principal, station_id)
    # End the read before waiting on the station (SQLite: an open transaction holds the lock
    # the station's own messages need meanwhile).
    await session.close()
    now = request_now(request)
    if (body.expires_at is None) == (body.minutes is None):
        return invalid(["body.expires_at: give expires_at or minutes, one of them"])
    expires_at = body.expires_at or now + timedelta(minutes=body.minutes or 0)
    gateway = _gateway(request)
    try:
        row = await _send(reserve(
            request.app.state.session_factory, gateway, station, connector=body.connector,
            badge_uid=body.id_tag, expires_at=expires_at, now=now, timeout=timeout,
        ), station_id)
    except ReservationProblem as error:
        return invalid([f"body.{problem}" for problem in error.problems])
    return reservation_json(row, now)


@router.get("/stations/{station_id}/reservations",
            summary="The station's reservations, newest first, with their state")
async def reservations_route(
    station_id: str,
    request: Request,
    session: DbSession,
    principal: Operator,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
) -> Any:
    await _station(session, principal, station_id)
    now = request_now(request)
    rows = await station_reservations(session, station_id, limit=limit)
    return [reservation_json(row, now) for row in rows]


@router.post(
    "/stations/{station_id}/reservations/{reservation_id}/cancel",
    summary="Cancel a reservation (CancelReservation); it ends when the station accepts",
    responses={
        404: {"description": "unknown station or reservation"},
        409: {"description": "the reservation holds nothing any more, the station answered "
                             "Rejected, or it is not connected"},
        **_STATION_ERRORS,
    },
)
async def cancel_route(
    station_id: str,
    reservation_id: int,
    request: Request,
    session: DbSession,
    principal: Operator,
    timeout: Annotated[float, Query(gt=0, le=300)] = 30.0,
) -> Any:
    await _station(session, principal, station_id)
    await session.close()
    now = request_now(request)
    gateway = _gateway(request)
    try:
        row, answer = await _send(cancel(
            request.app.state.session_factory, gateway, station_id, reservation_id, now=now,
            timeout=timeout,
        ), station_id)
    except ReservationNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except ReservationNotOpen as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if answer != "Accepted":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the station answered {answer}: reservation {reservation_id} stays as it was",
        )
    return {"answer": answer, "reservation": reservation_json(row, now)}
