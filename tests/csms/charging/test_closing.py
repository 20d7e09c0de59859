"""When a left-open session is over by what the station reports: the pure decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.charging.closing import (
    CLOSED_BY_NEW_TRANSACTION,
    CLOSED_ON_AVAILABLE,
    OpenSession,
    PlaceStatus,
    closure_reason,
    no_longer_ongoing,
)

T = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)


def session(use_id: int = 1, *, protocol: str = "ocpp1.6", evse: int | None = 1,
            connector: int | None = 1, started: int = 0, last: int = 600) -> OpenSession:
    return OpenSession(use_id, "WB-1", protocol, evse, connector,
                       T + timedelta(seconds=started), T + timedelta(seconds=last))


def available(at: int, place: int = 1, station: str = "WB-1") -> PlaceStatus:
    return PlaceStatus(station, place, "Available", T + timedelta(seconds=at))


def test_available_after_the_last_message_closes_once_the_grace_passed() -> None:
    s = session()
    assert closure_reason(s, [available(700)], [], T + timedelta(seconds=720),
                          available_grace=GRACE) is None
    assert closure_reason(s, [available(700)], [], T + timedelta(seconds=730),
                          available_grace=GRACE) == CLOSED_ON_AVAILABLE


def test_an_older_status_another_place_or_station_or_a_busy_one_does_not_close() -> None:
    s, late = session(), T + timedelta(hours=1)
    assert closure_reason(s, [available(500)], [], late, available_grace=GRACE) is None
    assert closure_reason(s, [available(700, place=2)], [], late, available_grace=GRACE) is None
    assert closure_reason(s, [available(700, station="WB-2")], [], late,
                          available_grace=GRACE) is None
    charging = PlaceStatus("WB-1", 1, "Charging", T + timedelta(seconds=700))
    assert closure_reason(s, [charging], [], late, available_grace=GRACE) is None


def test_a_newer_transaction_on_the_same_place_closes_the_older() -> None:
    old, new = session(1, started=0), session(2, started=900, last=900)
    assert closure_reason(old, [], [old, new], T, available_grace=GRACE) == \
        CLOSED_BY_NEW_TRANSACTION
    assert closure_reason(new, [], [old, new], T, available_grace=GRACE) is None
    elsewhere = session(3, evse=2, connector=2, started=900)
    assert closure_reason(old, [], [old, elsewhere], T, available_grace=GRACE) is None


def test_201_sessions_are_placed_by_evse_and_1_6_by_connector() -> None:
    s201 = session(protocol="ocpp2.0.1", evse=2, connector=1)
    assert closure_reason(s201, [available(700, place=2)], [], T + timedelta(hours=1),
                          available_grace=GRACE) == CLOSED_ON_AVAILABLE
    unplaced = session(evse=None, connector=None)
    assert closure_reason(unplaced, [available(700)], [], T + timedelta(hours=1),
                          available_grace=GRACE) is None


def test_only_an_answer_without_the_transaction_and_its_messages_is_not_ongoing() -> None:
    assert no_longer_ongoing({"ongoingIndicator": False, "messagesInQueue": False})
    assert not no_longer_ongoing({"ongoingIndicator": True, "messagesInQueue": False})
    assert not no_longer_ongoing({"ongoingIndicator": False, "messagesInQueue": True})
    assert not no_longer_ongoing({"messagesInQueue": False})
