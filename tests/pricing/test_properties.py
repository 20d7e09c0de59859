"""Properties of rating, checked on random tariffs and sessions (hypothesis)."""

from __future__ import annotations

import itertools
from datetime import UTC, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import LiveRater, Sample, Tariff, Usage, load_tariff, rate
from tests.pricing.strategies import PRICES, sessions, tariff_docs, tariffs

EXAMPLES = settings(max_examples=150, deadline=None)


def bill_of(t: Tariff, samples: list[Sample]) -> Decimal:
    bill = rate(t, Usage.of(samples))
    return bill.total


# The contract prices step rounding by the component applying at the session's last instant, so
# a rounded-up session that moves from an expensive window into a cheap one can cost less a
# second later. Monotonicity therefore holds for tariffs whose windowed dimensions have step 1,
# on whole-second timestamps (a fraction of a second is a step-1 rounding too).
MONOTONE = tariffs(steps=False)


@EXAMPLES
@given(MONOTONE, sessions(min_size=2, fractions=False), st.integers(1, 7200),
       st.integers(0, 6000), st.booleans())
def test_a_bill_never_decreases_as_the_session_grows(
    t: Tariff, samples: list[Sample], seconds: int, wh: int, charging: bool
) -> None:
    before = bill_of(t, samples)
    later = Sample(samples[-1].at.astimezone(UTC) + timedelta(seconds=seconds),
                   samples[-1].energy_wh + wh,
                   charging)
    assert bill_of(t, [*samples, later]) >= before
    # more energy by the same last instant never costs less either
    more = Sample(samples[-1].at, samples[-1].energy_wh + wh, samples[-1].charging)
    assert bill_of(t, [*samples[:-1], more]) >= before


@EXAMPLES
@given(MONOTONE, sessions(min_size=2, fractions=False), st.data())
def test_rating_a_prefix_never_exceeds_rating_all(
    t: Tariff, samples: list[Sample], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(samples)))
    assert bill_of(t, samples[:cut]) <= bill_of(t, samples)


@EXAMPLES
@given(PRICES, st.integers(1, 50), sessions(), st.sampled_from([1, 100, 1000]))
def test_a_zero_tier_really_caps(price: str, cap_kwh: int, samples: list[Sample],
                                 step: int) -> None:
    cap = cap_kwh * 1000
    t = load_tariff({"id": "c", "currency": "EUR", "vat_percent": "0", "components": [
        {"dimension": "energy", "step_wh": step,
         "tiers": [{"from_wh": 0, "price": price}, {"from_wh": cap, "price": "0"}]}]})
    bill = rate(t, Usage.of(samples))
    most = Decimal(price) * cap_kwh
    assert bill.subtotal <= most and bill.net == bill.gross and bill.vat == 0
    if samples[-1].energy_wh - samples[0].energy_wh >= cap:
        # At 0 % VAT net is what is paid, in whole cents.
        assert bill.subtotal == most


@EXAMPLES
@given(tariff_docs(), sessions(), st.sampled_from(["0.01", "1", "7.50"]))
def test_max_price_is_never_exceeded(doc: dict[str, object], samples: list[Sample],
                                     cap: str) -> None:
    doc = {**doc, "max_price": cap}
    doc.pop("min_price", None)
    bill = rate(load_tariff(doc), Usage.of(samples))
    assert bill.net <= Decimal(cap)


@st.composite
def straight_lines(draw: st.DrawFn) -> tuple[list[Sample], list[Sample]]:
    """A session, and the same session with extra samples on the straight line of each span."""
    base = draw(sessions(min_size=2, fractions=False))
    parts = draw(st.integers(2, 5))
    coarse: list[Sample] = [base[0]]
    fine: list[Sample] = [base[0]]
    for previous, sample in itertools.pairwise(base):
        # make each span divisible into `parts` exact pieces of time and energy
        seconds = (sample.at.astimezone(UTC) - previous.at.astimezone(UTC)) // timedelta(
            seconds=1) * parts
        rise = (sample.energy_wh - previous.energy_wh) * parts
        start, register = coarse[-1].at.astimezone(UTC), coarse[-1].energy_wh
        for part in range(1, parts + 1):
            fine.append(Sample(start + timedelta(seconds=seconds * part // parts),
                               register + rise * part // parts, sample.charging))
        coarse.append(Sample(start + timedelta(seconds=seconds), register + rise,
                             sample.charging))
    return coarse, fine


@EXAMPLES
@given(tariffs(), straight_lines())
def test_more_samples_on_the_same_straight_line_give_the_same_bill(
    t: Tariff, pair: tuple[list[Sample], list[Sample]]
) -> None:
    coarse, fine = pair
    a, b = rate(t, Usage.of(coarse)), rate(t, Usage.of(fine))
    assert (a.net, a.vat, a.gross, a.recovery, a.total) == (b.net, b.vat, b.gross, b.recovery,
                                                           b.total)
    assert a.lines == b.lines


@settings(max_examples=120, deadline=None)
@given(tariffs(), sessions(max_size=10))
def test_live_rater_equals_rating_all_samples_so_far(t: Tariff, samples: list[Sample]) -> None:
    live = LiveRater(t)
    for count, sample in enumerate(samples, start=1):
        assert live.add(sample) == rate(t, Usage.of(samples[:count]))
