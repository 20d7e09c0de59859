"""The reads that station messages name for their batch to make ahead (csms.ocpp.group_commit):
the badge shown, and whether the station holds an open reservation. The transactions' own
(the earlier copy of a start, the transaction a message names) are in transactions_ahead."""

from __future__ import annotations

from datetime import datetime

from csms.ocpp.events import IdToken, StationRef
from csms.ocpp.group_commit import BatchRead
from csms.ocpp.reservation_book import check_open_ahead
from rfid.registry import look_up_ahead


def badge_read(station: StationRef, token: IdToken) -> BatchRead:
    """The badge lookup an authorizer makes for `token`, read ahead with its batch's."""
    return BatchRead(look_up_ahead, (token.value, station.idtag_format, station.site_id))


def reservations_read(station: StationRef, now: datetime) -> BatchRead:
    """Whether the station holds an open reservation (a reservation gate's first question),
    read ahead with its batch's."""
    return BatchRead(check_open_ahead, (station.station_id, now))
