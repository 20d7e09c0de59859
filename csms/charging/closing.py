"""When a session the station left open is over, by what the station reports (pure).

A station that loses a StopTransaction / TransactionEvent Ended still tells us its connector is
free: it reports it Available, it starts a new transaction on it, or it answers that it no
longer has the transaction. Each of these closes the session (billed to its last reading, once,
by the flow); a boot closes the rest (`BillingService.sweep`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

PROTOCOL_16 = "ocpp1.6"

CLOSED_ON_AVAILABLE = "closed_on_available"
CLOSED_BY_NEW_TRANSACTION = "closed_by_new_transaction"
CLOSED_NOT_ONGOING = "closed_not_ongoing"


@dataclass(frozen=True, slots=True)
class OpenSession:
    use_id: int
    station_id: str
    protocol: str
    evse_id: int | None
    connector_id: int | None
    received_at: datetime
    last_message_at: datetime

    @property
    def place(self) -> int | None:
        """The station's numbering of where it charges: 1.6 connector, 2.0.1 EVSE."""
        return self.connector_id if self.protocol == PROTOCOL_16 else self.evse_id


@dataclass(frozen=True, slots=True)
class PlaceStatus:
    """A connector's (1.6) or EVSE's (2.0.1) last reported status, as `ConnectorStatus` keeps
    it (1.6 stores the connector as its EVSE too)."""

    station_id: str
    evse_id: int
    status: str
    received_at: datetime


def closure_reason(
    session: OpenSession,
    statuses: Iterable[PlaceStatus],
    others: Iterable[OpenSession],
    now: datetime,
    *,
    available_grace: timedelta,
) -> str | None:
    """Why `session` is over although no stop came (None: it may still run).

    - its place was reported Available after the session's last message, and a grace for a
      late stop has passed since;
    - a newer transaction runs on the same place (`others`: the station's other sessions, open
      or not).
    """
    place = session.place
    if place is None:
        return None
    for other in others:
        if (other.use_id != session.use_id and other.station_id == session.station_id
                and other.place == place and other.received_at > session.received_at):
            return CLOSED_BY_NEW_TRANSACTION
    for status in statuses:
        if (status.station_id == session.station_id and status.evse_id == place
                and status.status == "Available"
                and status.received_at > session.last_message_at
                and now - status.received_at >= available_grace):
            return CLOSED_ON_AVAILABLE
    return None


def no_longer_ongoing(answer: dict[str, object]) -> bool:
    """A 2.0.1 GetTransactionStatus answer saying the station has neither the transaction nor
    messages of it still queued."""
    return answer.get("ongoingIndicator") is False and answer.get("messagesInQueue") is False
