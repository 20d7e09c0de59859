"""The supply rule, pure: cut only after the warnings and the lead time, never in a friendly
window, restore at once; the wallet's modes decide first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meters.supply_control import wanted_supply
from wallet.credit import CreditDecision, Reason

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
LEAD = timedelta(hours=1)


def decision(cut: bool, reason: Reason = Reason.CREDIT_EXHAUSTED) -> CreditDecision:
    return CreditDecision(may_start=not cut, must_stop=cut, cut_supply=cut, reason=reason,
                          available=Decimal("-0.40") if cut else Decimal("12.00"),
                          credit_allowed=Decimal("0"))


def test_credit_used_up_warns_first_then_waits_the_lead_then_cuts() -> None:
    first = wanted_supply(decision(True), supply_on=True, thresholds_crossed=True,
                          warned_at=None, now=NOW, lead=LEAD)
    assert (first.on, first.warn) == (True, True)
    waiting = wanted_supply(decision(True), supply_on=True, thresholds_crossed=True,
                            warned_at=NOW, now=NOW + LEAD - timedelta(seconds=1), lead=LEAD)
    assert (waiting.on, waiting.warn) == (True, False)
    cut = wanted_supply(decision(True), supply_on=True, thresholds_crossed=True,
                        warned_at=NOW, now=NOW + LEAD, lead=LEAD)
    assert (cut.on, cut.reason) == (False, "credit_exhausted")


def test_no_cut_before_every_low_balance_threshold_was_crossed() -> None:
    verdict = wanted_supply(decision(True), supply_on=True, thresholds_crossed=False,
                            warned_at=NOW - 2 * LEAD, now=NOW, lead=LEAD)
    assert verdict.on


@pytest.mark.parametrize("reason", [Reason.FRIENDLY_DAILY, Reason.FRIENDLY_WEEKEND,
                                    Reason.FRIENDLY_HOLIDAY, Reason.FREE_MODE, Reason.OK])
def test_what_the_wallet_does_not_cut_stays_on_and_a_cut_supply_comes_back(
    reason: Reason
) -> None:
    for supply_on in (True, False):
        verdict = wanted_supply(decision(False, reason), supply_on=supply_on,
                                thresholds_crossed=True, warned_at=NOW - 2 * LEAD, now=NOW,
                                lead=LEAD)
        assert verdict.on and not verdict.warn


def test_blocked_mode_cuts_without_waiting_and_a_cut_supply_stays_cut() -> None:
    blocked = wanted_supply(decision(True, Reason.BLOCKED), supply_on=True,
                            thresholds_crossed=False, warned_at=None, now=NOW, lead=LEAD)
    assert not blocked.on
    stays = wanted_supply(decision(True), supply_on=False, thresholds_crossed=True,
                          warned_at=None, now=NOW, lead=LEAD)
    assert not stays.on and not stays.warn
