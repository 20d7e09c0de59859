"""The pure reservation decisions: active at a moment, who may use a connector, what a start
uses, the refusal, the ReserveNow payloads of both versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.ocpp.events import AuthDecision, AuthStatus
from csms.ocpp.reservations import (
    Ending,
    Reservation,
    in_the_way,
    is_active,
    refused,
    request_problems,
    reserve_now_payload,
    state,
    used_by,
)
from csms.ocpp.wire import schema_problems

NOW = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=30)


def reservation(
    rid: int = 1, connector: int | None = 1, tag: str = "04A2B3C4", account: str | None = "a-01",
    **kwargs: object,
) -> Reservation:
    values: dict[str, object] = {
        "id": rid, "station_id": "WB-1", "connector_id": connector, "id_tag": tag,
        "account_id": account, "expires_at": LATER, "answer": "Accepted",
    }
    values.update(kwargs)
    return Reservation(**values)  # type: ignore[arg-type]


def test_active_until_expiry_only_when_accepted_and_not_ended() -> None:
    r = reservation()
    assert is_active(r, NOW)
    assert is_active(r, LATER - timedelta(microseconds=1))
    assert not is_active(r, LATER)
    assert state(r, LATER) == "expired"
    for answer in ("Faulted", "Occupied", "Rejected", "Unavailable"):
        assert not is_active(reservation(answer=answer), NOW)
        assert state(reservation(answer=answer), NOW) == "refused"
    assert state(reservation(answer=None), NOW) == "unanswered"
    for ending in Ending:
        assert not is_active(reservation(ended=ending), NOW)
        assert state(reservation(ended=ending), NOW) == ending.value


def test_reserved_connector_is_the_badge_and_its_household_only() -> None:
    held = [reservation()]

    def way(tag: str, account: str | None, connector: int | None = 1) -> Reservation | None:
        return in_the_way(held, connector=connector, connectors=2, id_tag=tag,
                          account_id=account, now=NOW)

    assert way("04A2B3C4", "a-01") is None
    assert way("04a2b3c4", None) is None  # the same badge, read in lower case, unknown account
    assert way("0411223344", "a-01") is None  # another badge of the household
    assert way("04DDEEFF", "a-02") == held[0]
    assert way("04DDEEFF", None) == held[0]
    assert way("04DDEEFF", "a-02", connector=2) is None  # the other connector is free
    assert way("04DDEEFF", "a-02", connector=None) is None  # Authorize: one is left
    assert in_the_way(held, connector=1, connectors=2, id_tag="04DDEEFF", account_id="a-02",
                      now=LATER) is None  # expired


def test_single_connector_station_refuses_others_at_authorize() -> None:
    held = [reservation()]
    assert in_the_way(held, connector=None, connectors=1, id_tag="04DDEEFF", account_id="a-02",
                      now=NOW) == held[0]
    assert in_the_way(held, connector=None, connectors=1, id_tag="04A2B3C4", account_id="a-01",
                      now=NOW) is None


def test_station_wide_reservations_keep_one_connector_each() -> None:
    anywhere = reservation(connector=None)
    # Two connectors, one held for anybody's badge of a-01: another badge may take one of them.
    assert in_the_way([anywhere], connector=1, connectors=2, id_tag="04DDEEFF",
                      account_id="a-02", now=NOW) is None
    # With connector 2 reserved for a third household, connector 1 is the last one left.
    third = reservation(rid=2, connector=2, tag="04778899", account="a-03")
    assert in_the_way([anywhere, third], connector=1, connectors=2, id_tag="04DDEEFF",
                      account_id="a-02", now=NOW) == anywhere
    assert in_the_way([anywhere, third], connector=None, connectors=2, id_tag="04DDEEFF",
                      account_id="a-02", now=NOW) is not None
    # The holder of the station-wide one may take connector 1, not the third's connector 2.
    assert in_the_way([anywhere, third], connector=1, connectors=2, id_tag="04A2B3C4",
                      account_id="a-01", now=NOW) is None
    assert in_the_way([anywhere, third], connector=2, connectors=2, id_tag="04A2B3C4",
                      account_id="a-01", now=NOW) == third


def test_a_start_uses_the_named_reservation_or_the_badges_own() -> None:
    own = reservation(rid=7)
    other = reservation(rid=8, connector=2, tag="04778899", account="a-03")
    held = [own, other]
    assert used_by(held, reservation_id=8, connector=2, id_tag="04778899", account_id="a-03",
                   now=NOW) == other
    # The station says it used it: so it did, even with our clock past its expiry.
    assert used_by(held, reservation_id=7, connector=1, id_tag=None, account_id=None,
                   now=LATER) == own
    # Not named: the household's badge starting on the reserved connector uses it.
    assert used_by(held, reservation_id=None, connector=1, id_tag="0411223344",
                   account_id="a-01", now=NOW) == own
    assert used_by(held, reservation_id=None, connector=2, id_tag="0411223344",
                   account_id="a-01", now=NOW) is None
    assert used_by(held, reservation_id=None, connector=1, id_tag="04DDEEFF",
                   account_id="a-02", now=NOW) is None
    assert used_by([reservation(connector=None)], reservation_id=None, connector=2,
                   id_tag="04A2B3C4", account_id="a-01", now=NOW) is not None


def test_refusal_is_not_at_this_time_until_the_reservation_expires() -> None:
    accepted = AuthDecision(AuthStatus.ACCEPTED, account_id="a-02", personal_message="Hallo")
    answer = refused(accepted, reservation())
    assert answer.status is AuthStatus.NOT_AT_THIS_TIME
    assert answer.expires_at == LATER
    assert answer.account_id == "a-02"
    assert answer.personal_message is None
    assert refused(accepted, None) is accepted
    blocked = AuthDecision(AuthStatus.BLOCKED)
    assert refused(blocked, reservation()) is blocked


def test_reserve_now_payloads_follow_the_schemas() -> None:
    r = reservation(rid=42)
    one_six = reserve_now_payload("ocpp1.6", r)
    assert one_six == {
        "connectorId": 1, "expiryDate": "2026-12-02T17:30:00.000Z", "idTag": "04A2B3C4",
        "reservationId": 42, "parentIdTag": "a-01",
    }
    assert schema_problems("ocpp1.6", "ReserveNow", one_six) == []
    two = reserve_now_payload("ocpp2.0.1", r)
    assert two == {
        "id": 42, "expiryDateTime": "2026-12-02T17:30:00.000Z",
        "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "evseId": 1,
        "groupIdToken": {"idToken": "a-01", "type": "Central"},
    }
    assert schema_problems("ocpp2.0.1", "ReserveNow", two) == []
    anywhere = reservation(connector=None, account=None)
    assert reserve_now_payload("ocpp1.6", anywhere)["connectorId"] == 0
    assert "evseId" not in reserve_now_payload("ocpp2.0.1", anywhere)
    assert "groupIdToken" not in reserve_now_payload("ocpp2.0.1", anywhere)


def test_request_problems_are_all_named() -> None:
    assert request_problems(connector=1, connectors=2, expires_at=LATER, now=NOW) == []
    problems = request_problems(connector=3, connectors=2, expires_at=NOW, now=NOW)
    assert [p.split(":")[0] for p in problems] == ["connector", "expires_at"]
    naive = request_problems(connector=0, connectors=1, expires_at=datetime(2027, 1, 1),
                             now=NOW)
    assert naive == ["expires_at: give a time zone (e.g. Z or +01:00)"]
