"""Reservations (OCPP 1.6 ReserveNow / CancelReservation, 2.0.1 functional block H), decided.

Pure: a reservation as the station answered it, and what follows from it at a given moment
(`now` is always an argument). Where reservations are stored and how they reach stations is
`csms.ocpp.reservation_book`.

A reservation holds one connector (1.6 `connectorId`, 2.0.1 `evseId`) or, without one, any one
connector of the station for one badge until it is used (a transaction started on it by that
badge), cancelled (the station accepted CancelReservation, or a 2.0.1 station reported it
Removed or Expired) or its expiry passes. Only a reservation the station Accepted holds anything.
The badge's household (its account: 1.6 `parentIdTag`, 2.0.1 `groupIdToken`, as on the local
lists) may use it as well, as the station itself allows.

Occupancy is not weighed: a connector charging for somebody else counts as free here, so with
station-wide reservations a badge may be told yes and then find the only free connector held;
the station, which knows, still refuses it locally.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from csms.ocpp.events import PROTOCOL_16, AuthDecision, AuthStatus
from csms.ocpp.wire import wire_timestamp
from rfid.authorisation import group_token

ACCEPTED: Final = "Accepted"
# ReserveNow answers (the same in both versions).
ANSWERS: Final = ("Accepted", "Faulted", "Occupied", "Rejected", "Unavailable")
# The idToken type a badge is sent with (as RequestStartTransaction does).
TOKEN_TYPE: Final = "ISO14443"


class Ending(StrEnum):
    USED = "used"
    CANCELLED = "cancelled"
    # 2.0.1 ReservationStatusUpdate: the station removed it, or saw it expire.
    REMOVED = "removed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int  # the OCPP reservationId (1.6) / id (2.0.1)
    station_id: str
    # 1.6 connectorId / 2.0.1 evseId; None: any one connector of the station (1.6 connector 0).
    connector_id: int | None
    # The badge as the station reads it (the station's idtag_format).
    id_tag: str
    # The badge's household: its other badges may use the reservation too.
    account_id: str | None
    expires_at: datetime
    # The station's answer to ReserveNow; None: none came (not sent, or no answer in time).
    answer: str | None = None
    ended: Ending | None = None


def is_active(reservation: Reservation, now: datetime) -> bool:
    """Whether it holds its connector at `now`: accepted, not ended, not past its expiry."""
    return (
        reservation.answer == ACCEPTED
        and reservation.ended is None
        and now < reservation.expires_at
    )


def state(reservation: Reservation, now: datetime) -> str:
    """One word for people: active, used, cancelled, removed, expired, refused (the station did
    not accept it) or unanswered."""
    if reservation.answer is None:
        return "unanswered"
    if reservation.answer != ACCEPTED:
        return "refused"
    if reservation.ended is not None:
        return reservation.ended.value
    return "active" if now < reservation.expires_at else Ending.EXPIRED.value


def _same_tag(a: str, b: str) -> bool:
    # Hex UIDs arrive in either case, depending on the reader firmware.
    return a.strip().upper() == b.strip().upper()


def holds(reservation: Reservation, id_tag: str, account_id: str | None) -> bool:
    """Whether the badge (`id_tag` as the station sent it, of `account_id`) may use it."""
    if _same_tag(reservation.id_tag, id_tag):
        return True
    return reservation.account_id is not None and reservation.account_id == account_id


def in_the_way(
    reservations: Iterable[Reservation],
    *,
    connector: int | None,
    connectors: int,
    id_tag: str,
    account_id: str | None,
    now: datetime,
) -> Reservation | None:
    """The reservation that keeps this badge off `connector` at `now`, or None if it may charge
    there. `connector` None (an Authorize, which names none): None if it may charge on any
    connector of the station's `connectors`.

    A connector reserved for another badge is theirs; the unreserved ones are free for this
    badge only while, after it took one, one is left for each station-wide reservation of
    others.
    """
    active = [r for r in reservations if is_active(r, now)]
    others = [r for r in active if not holds(r, id_tag, account_id)]
    if not others:
        return None
    own = {r.connector_id for r in active if r.connector_id is not None and r not in others}
    theirs = {r.connector_id: r for r in others if r.connector_id is not None}
    anywhere = sorted((r for r in others if r.connector_id is None), key=lambda r: r.expires_at)
    reserved = own | set(theirs)
    unreserved = [c for c in range(1, connectors + 1) if c not in reserved]
    pool_left = len(unreserved) > len(anywhere)
    if connector is None:
        if own or pool_left:
            return None
        return min(others, key=lambda r: r.expires_at)
    if connector in theirs:
        return theirs[connector]
    if connector in own or pool_left:
        return None
    return anywhere[0]


def used_by(
    reservations: Iterable[Reservation],
    *,
    reservation_id: int | None,
    connector: int | None,
    id_tag: str | None,
    account_id: str | None,
    now: datetime,
) -> Reservation | None:
    """The reservation a transaction starting now uses: the one the station names (it ended it
    on its side, whatever we thought of it), else the badge's own active one on that connector
    or for the whole station (a station that did not say)."""
    candidates = list(reservations)
    if reservation_id is not None:
        named = [r for r in candidates if r.id == reservation_id and r.ended is None]
        if named:
            return named[0]
    if id_tag is None:
        return None
    for reservation in sorted(candidates, key=lambda r: r.connector_id is None):
        if (
            is_active(reservation, now)
            and holds(reservation, id_tag, account_id)
            and reservation.connector_id in (connector, None)
        ):
            return reservation
    return None


def refused(decision: AuthDecision, blocking: Reservation | None) -> AuthDecision:
    """The answer for a badge `blocking` keeps off: NotAtThisTime (1.6: Blocked) until the
    reservation's expiry, so a station caching it asks again once the reservation may be over.
    A decision that refuses already stays as it is."""
    if blocking is None or not decision.accepted:
        return decision
    return replace(
        decision, status=AuthStatus.NOT_AT_THIS_TIME, expires_at=blocking.expires_at,
        reason="reserved", personal_message=None,
    )


def reserve_now_payload(protocol: str, reservation: Reservation) -> dict[str, Any]:
    """The ReserveNow request of the station's version; the household goes along as the group
    the station lets use the reservation too."""
    expiry = wire_timestamp(reservation.expires_at)
    account = reservation.account_id
    if protocol == PROTOCOL_16:
        payload: dict[str, Any] = {
            "connectorId": reservation.connector_id or 0,
            "expiryDate": expiry,
            "idTag": reservation.id_tag,
            "reservationId": reservation.id,
        }
        if account is not None:
            payload["parentIdTag"] = group_token(account, 20)
        return payload
    payload = {
        "id": reservation.id,
        "expiryDateTime": expiry,
        "idToken": {"idToken": reservation.id_tag, "type": TOKEN_TYPE},
    }
    if reservation.connector_id is not None:
        payload["evseId"] = reservation.connector_id
    if account is not None:
        payload["groupIdToken"] = {"idToken": group_token(account, 36), "type": "Central"}
    return payload


def request_problems(
    *, connector: int, connectors: int, expires_at: datetime, now: datetime
) -> list[str]:
    """What is wrong with an operator's reservation request, every problem with its field."""
    problems = []
    if not 0 <= connector <= connectors:
        problems.append(
            f"connector: {connector} is not 0 (any) or one of the station's 1..{connectors}"
        )
    if expires_at.tzinfo is None:
        problems.append("expires_at: give a time zone (e.g. Z or +01:00)")
    elif expires_at <= now:
        problems.append(f"expires_at: {expires_at.isoformat()} has passed")
    return problems
