"""The pure credit decision, table-driven over the calendar (DST nights in Berlin and Vienna,
weekends, regional holidays, credit days, spans) and over modes and emergency credit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from wallet.credit import (
    CreditPolicy,
    DailySpan,
    DateSpan,
    FriendlyCredit,
    Mode,
    PolicyInvalid,
    Reason,
    SiteCalendar,
    WalletState,
    decide,
    friendly_window,
)

BERLIN = SiteCalendar("Europe/Berlin", "DE", "BY")
VIENNA = SiteCalendar("Europe/Vienna", "AT", "9")
BROKE = WalletState(balance=Decimal("-0.50"))
FUNDED = WalletState(balance=Decimal("20.00"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def policy(**friendly: object) -> CreditPolicy:
    return CreditPolicy(friendly=FriendlyCredit(**friendly))  # type: ignore[arg-type]


NIGHTS = policy(daily=DailySpan(time(18), time(8)))
SMALL_HOURS = policy(daily=DailySpan(time(2), time(3)))
HOLIDAYS = policy(holidays=True)
WEEKENDS = policy(weekends=True)
CREDIT_DAYS = policy(credit_days=frozenset({date(2026, 12, 24), date(2026, 12, 31)}))
SPAN = policy(span=DateSpan(date(2026, 12, 20), date(2027, 1, 6)))

CALENDAR_CASES = [
    # (calendar, policy, instant UTC, expected friendly window) -- a broke account in each.
    # A winter weekday: 18:00-08:00 CET is 17:00-07:00 UTC.
    (BERLIN, NIGHTS, "2026-03-25T06:59:59", Reason.FRIENDLY_DAILY),
    (BERLIN, NIGHTS, "2026-03-25T07:00:00", None),
    (BERLIN, NIGHTS, "2026-03-25T16:59:59", None),
    (BERLIN, NIGHTS, "2026-03-25T17:00:00", Reason.FRIENDLY_DAILY),
    # Spring-forward night (29 March 2026): 08:00 CEST is already 06:00 UTC.
    (BERLIN, NIGHTS, "2026-03-29T05:59:59", Reason.FRIENDLY_DAILY),
    (BERLIN, NIGHTS, "2026-03-29T06:00:00", None),
    (VIENNA, NIGHTS, "2026-03-29T06:00:00", None),
    (VIENNA, NIGHTS, "2026-03-29T05:30:00", Reason.FRIENDLY_DAILY),
    # 02:00-03:00 does not exist that night: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST.
    (BERLIN, SMALL_HOURS, "2026-03-29T00:59:59", None),
    (BERLIN, SMALL_HOURS, "2026-03-29T01:00:00", None),
    (VIENNA, SMALL_HOURS, "2026-03-29T01:00:00", None),
    # Fall-back night (25 October 2026): 02:00-03:00 happens twice, two real hours friendly.
    (BERLIN, SMALL_HOURS, "2026-10-24T23:59:59", None),
    (BERLIN, SMALL_HOURS, "2026-10-25T00:00:00", Reason.FRIENDLY_DAILY),
    (BERLIN, SMALL_HOURS, "2026-10-25T01:30:00", Reason.FRIENDLY_DAILY),
    (VIENNA, SMALL_HOURS, "2026-10-25T01:59:59", Reason.FRIENDLY_DAILY),
    (VIENNA, SMALL_HOURS, "2026-10-25T02:00:00", None),
    # Summer time: 18:00 CEST is 16:00 UTC.
    (VIENNA, NIGHTS, "2026-07-01T15:59:59", None),
    (VIENNA, NIGHTS, "2026-07-01T16:00:00", Reason.FRIENDLY_DAILY),
    # Weekends start at local midnight, not UTC midnight.
    (BERLIN, WEEKENDS, "2026-03-27T22:59:59", None),
    (BERLIN, WEEKENDS, "2026-03-27T23:00:00", Reason.FRIENDLY_WEEKEND),
    (BERLIN, WEEKENDS, "2026-03-29T21:59:59", Reason.FRIENDLY_WEEKEND),  # Sunday 23:59 CEST
    (BERLIN, WEEKENDS, "2026-03-29T22:00:00", None),
    # Regional holidays: 8 December is one in Vienna, not in Bavaria; Good Friday the reverse.
    (VIENNA, HOLIDAYS, "2026-12-07T23:00:00", Reason.FRIENDLY_HOLIDAY),
    (VIENNA, HOLIDAYS, "2026-12-07T22:59:59", None),
    (BERLIN, HOLIDAYS, "2026-12-08T10:00:00", None),
    (BERLIN, HOLIDAYS, "2026-04-03T10:00:00", Reason.FRIENDLY_HOLIDAY),
    (VIENNA, HOLIDAYS, "2026-04-03T10:00:00", None),
    (BERLIN, HOLIDAYS, "2026-06-04T10:00:00", Reason.FRIENDLY_HOLIDAY),  # Corpus Christi, BY
    # Credit days chosen by the owner, by local date.
    (BERLIN, CREDIT_DAYS, "2026-12-23T22:59:59", None),
    (BERLIN, CREDIT_DAYS, "2026-12-23T23:00:00", Reason.FRIENDLY_CREDIT_DAY),
    (BERLIN, CREDIT_DAYS, "2026-12-31T22:59:59", Reason.FRIENDLY_CREDIT_DAY),
    (BERLIN, CREDIT_DAYS, "2026-12-31T23:00:00", None),
    # A span of consecutive days, both ends included, across the new year.
    (BERLIN, SPAN, "2026-12-19T22:59:59", None),
    (BERLIN, SPAN, "2026-12-19T23:00:00", Reason.FRIENDLY_SPAN),
    (BERLIN, SPAN, "2027-01-06T22:59:59", Reason.FRIENDLY_SPAN),
    (BERLIN, SPAN, "2027-01-06T23:00:00", None),
]


@pytest.mark.parametrize(("calendar", "rules", "instant", "window"), CALENDAR_CASES)
def test_friendly_windows_over_the_calendar(
    calendar: SiteCalendar, rules: CreditPolicy, instant: str, window: Reason | None
) -> None:
    decision = decide(rules, BROKE, utc(instant), calendar)
    assert decision.friendly == window
    # Inside a window nothing is stopped or cut for lack of credit; outside it is.
    assert decision.must_stop is (window is None)
    assert decision.cut_supply is (window is None)
    assert decision.reason == (window or Reason.CREDIT_EXHAUSTED)
    # A friendly window protects running use; it does not let a broke account start.
    assert decision.may_start is False


def test_holiday_names_come_from_the_sites_region() -> None:
    found = friendly_window(HOLIDAYS.friendly, VIENNA, utc("2026-12-08T09:00:00"))
    assert found is not None and found[0] is Reason.FRIENDLY_HOLIDAY and found[1]


DECISION_CASES = [
    # (policy, state, needed, supply_on, may_start, must_stop, cut_supply, reason, available)
    (CreditPolicy(), FUNDED, "0", True, True, False, False, Reason.OK, "20.00"),
    (CreditPolicy(), WalletState(Decimal("20.00"), Decimal("19.50")), "0", True,
     False, False, False, Reason.BELOW_START_MINIMUM, "0.50"),
    (CreditPolicy(), WalletState(Decimal("20.00"), Decimal("19.50")), "0.50", True,
     False, False, False, Reason.BELOW_START_MINIMUM, "0.50"),
    (CreditPolicy(), WalletState(Decimal("20.00"), Decimal("19.50")), "0.51", True,
     False, True, True, Reason.CREDIT_EXHAUSTED, "0.50"),
    (CreditPolicy(), WalletState(Decimal("0.00")), "0", True,
     False, False, False, Reason.BELOW_START_MINIMUM, "0.00"),
    (CreditPolicy(start_minimum=Decimal("0")), WalletState(Decimal("0.00")), "0", True,
     False, False, False, Reason.BELOW_START_MINIMUM, "0.00"),
    # A cut supply comes back only at the start minimum (no flapping around zero).
    (CreditPolicy(), WalletState(Decimal("0.50")), "0", False,
     False, False, True, Reason.BELOW_START_MINIMUM, "0.50"),
    (CreditPolicy(), WalletState(Decimal("1.00")), "0", False,
     True, False, False, Reason.OK, "1.00"),
    # Emergency credit counts only once activated.
    (CreditPolicy(emergency_credit=Decimal("10.00")), BROKE, "0", True,
     False, True, True, Reason.CREDIT_EXHAUSTED, "-0.50"),
    (CreditPolicy(emergency_credit=Decimal("10.00")),
     WalletState(Decimal("-0.50"), emergency_active=True), "0", True,
     True, False, False, Reason.OK, "9.50"),
    # Modes.
    (CreditPolicy(mode=Mode.FREE), BROKE, "5", True,
     True, False, False, Reason.FREE_MODE, "-0.50"),
    (CreditPolicy(mode=Mode.BLOCKED), FUNDED, "0", True,
     False, True, True, Reason.BLOCKED, "20.00"),
]


@pytest.mark.parametrize(
    ("rules", "state", "needed", "supply_on", "may_start", "must_stop", "cut", "reason",
     "available"),
    DECISION_CASES,
)
def test_decisions(
    rules: CreditPolicy, state: WalletState, needed: str, supply_on: bool, may_start: bool,
    must_stop: bool, cut: bool, reason: Reason, available: str,
) -> None:
    decision = decide(rules, state, utc("2026-03-25T12:00:00"), BERLIN,
                      needed=Decimal(needed), supply_on=supply_on)
    assert (decision.may_start, decision.must_stop, decision.cut_supply, decision.reason) == (
        may_start, must_stop, cut, reason)
    assert decision.available == Decimal(available)


def test_emergency_credit_is_offered_until_activated() -> None:
    rules = CreditPolicy(emergency_credit=Decimal("10.00"))
    assert decide(rules, BROKE, utc("2026-03-25T12:00:00"), BERLIN).emergency_available
    active = WalletState(Decimal("-0.50"), emergency_active=True)
    decision = decide(rules, active, utc("2026-03-25T12:00:00"), BERLIN)
    assert not decision.emergency_available
    assert decision.credit_allowed == Decimal("10.00")


def test_policy_document_round_trips() -> None:
    document = {
        "mode": "prepaid",
        "start_minimum": "2.00",
        "emergency_credit": "10.00",
        "friendly": {
            "daily": {"from": "18:00", "to": "08:00"}, "weekends": True, "holidays": True,
            "credit_days": ["2026-12-24"], "span": {"from": "2026-12-20", "to": "2027-01-06"},
        },
        "debt_recovery": {"daily_rate": "0.50", "surcharge_per_kwh": "0.05",
                          "topup_percent": "10", "weekly_cap": "5.00"},
        "low_balance_thresholds": ["5.00", "10.00"],
    }
    parsed = CreditPolicy.from_document(document)
    assert parsed.low_balance_thresholds == (Decimal("10.00"), Decimal("5.00"))
    assert parsed.friendly.daily == DailySpan(time(18), time(8))
    assert CreditPolicy.from_document(parsed.to_document()) == parsed


def test_policy_errors_are_all_reported_with_their_paths() -> None:
    eleven = [f"2026-01-{day:02d}" for day in range(1, 12)]
    with pytest.raises(PolicyInvalid) as caught:
        CreditPolicy.from_document({
            "mode": "postpaid",
            "start_minimum": 1.5,
            "friendly": {"daily": {"from": "18:00", "to": "25:00"}, "credit_days": eleven,
                         "span": {"from": "2026-02-01", "to": "2026-01-01"}, "nights": True},
            "debt_recovery": {"topup_percent": "120"},
            "low_balance_thresholds": ["-1"],
        })
    paths = [path for path, _ in caught.value.errors]
    assert paths == [
        "mode", "start_minimum", "friendly.nights", "friendly.daily.to",
        "friendly.credit_days", "friendly.span.to", "debt_recovery.topup_percent",
        "low_balance_thresholds[0]",
    ]
    assert "11 credit days in 2026; at most 10" in str(caught.value)


def test_ten_credit_days_a_year_are_allowed() -> None:
    ten = [f"2026-01-{day:02d}" for day in range(1, 11)] + ["2027-01-01"]
    parsed = CreditPolicy.from_document({"friendly": {"credit_days": ten}})
    assert len(parsed.friendly.credit_days) == 11
