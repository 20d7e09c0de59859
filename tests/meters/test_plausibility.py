"""Plausibility of meter readings: worked examples and properties over any readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meters.plausibility import (
    ABSURD_JUMP,
    BLOCKING,
    COUNTER_BACKWARDS,
    GAP,
    NOT_A_NUMBER,
    OUT_OF_ORDER,
    OUT_OF_RANGE,
    POWER_UNREADABLE,
    judge,
    max_energy_wh,
    max_power_w,
    register_step_wh,
)
from meters.profiles import BUILTIN

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
THREE_PHASE = max_power_w("eastron-sdm630")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def flags(wh: int | None, at: datetime, last: tuple[datetime, int] | None = (T0, 1_000_000),
          **kwargs: object) -> tuple[str, ...]:
    options: dict[str, object] = {"power_limit_w": THREE_PHASE, "poll_s": 60}
    options.update(kwargs)
    return judge(last, at, wh, **options).flags  # type: ignore[arg-type]


def test_supply_limits_by_phases() -> None:
    assert max_power_w("eastron-sdm120") == 14_490  # 1 x 63 A x 230 V
    assert max_power_w("eastron-sdm630") == 43_470  # 3 x 63 A x 230 V
    assert max_power_w("eastron-sdm72d-m") == 43_470  # three-phase without per-phase registers
    assert max_power_w("some-custom-profile") == 43_470  # unknown: the larger limit
    # one minute at 43,470 W with the fuse's 1.45 overload allowance: 1050.525 Wh -> 1051,
    # plus the register's step (1 Wh) and one Wh for flooring
    assert max_energy_wh(43_470, Decimal(60), 1) == 1053


def test_register_steps() -> None:
    assert register_step_wh(BUILTIN["carlo-gavazzi-em24"], 12_345_600) == 100  # kWh*10
    assert register_step_wh(BUILTIN["abb-b23"], 12_345_670) == 10  # 0.01 kWh
    sdm = BUILTIN["eastron-sdm630"]
    assert register_step_wh(sdm, 100_000_000) == 8  # float32 kWh at 100,000 kWh: 7.8 Wh
    assert register_step_wh(sdm, 1_000) == 1
    assert register_step_wh(sdm, 0) == 1
    assert register_step_wh(None, 5) == 1000


def test_examples() -> None:
    # an ordinary minute: 250 Wh
    assert flags(1_000_250, minutes(1)) == ()
    # the first reading of a meter is its baseline
    assert judge(None, T0, 5, power_limit_w=THREE_PHASE, poll_s=60).billable
    # lower than the last billable value: exchanged or reset
    verdict = judge((T0, 1_000_000), minutes(1), 999_999, power_limit_w=THREE_PHASE, poll_s=60)
    assert verdict.flags == (COUNTER_BACKWARDS,) and not verdict.billable
    # NaN in the energy register
    assert flags(None, minutes(1)) == (NOT_A_NUMBER,)
    # a minute at the three-phase limit is possible, a bit more than 1.45 times it is not
    assert flags(1_001_053, minutes(1)) == ()
    assert flags(1_001_054, minutes(1)) == (ABSURD_JUMP,)
    # the same energy is possible for a single-phase flat only over three times as long
    assert flags(1_001_054, minutes(1), power_limit_w=14_490) == (ABSURD_JUMP,)
    assert flags(1_001_053, minutes(3), power_limit_w=14_490) == ()
    # a gap: no reading for more than 3 poll periods, still billed
    verdict = judge((T0, 1_000_000), minutes(3.5), 1_000_500, power_limit_w=THREE_PHASE,
                    poll_s=60)
    assert verdict.flags == (GAP,) and verdict.billable
    # a gap measured from the last reading of any kind, not the last billable one
    assert flags(1_000_500, minutes(10), last_reading_at=minutes(9)) == ()
    # the clock went back: not billable, intervals only move forward
    assert flags(1_000_000, T0) == (OUT_OF_ORDER,)
    # garbage from the line
    assert flags(-5, minutes(1)) == (OUT_OF_RANGE,)
    assert flags(10**16, minutes(1)) == (OUT_OF_RANGE,)
    # power unreadable: told, billed
    verdict = judge((T0, 1_000_000), minutes(1), 1_000_100, power_limit_w=THREE_PHASE,
                    poll_s=60, power_unreadable=True)
    assert verdict.flags == (POWER_UNREADABLE,) and verdict.billable
    # several at once, in a stable order
    assert flags(999_000, minutes(5)) == (COUNTER_BACKWARDS, GAP)


def test_poll_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poll_s"):
        judge(None, T0, 1, power_limit_w=THREE_PHASE, poll_s=0)


readings = st.tuples(
    st.integers(min_value=0, max_value=10**12),  # last billable register
    st.integers(min_value=1, max_value=7 * 86_400),  # seconds since it
    st.integers(min_value=1, max_value=3_600),  # poll period
    st.sampled_from([14_490, 43_470]),
)


@given(readings, st.integers(min_value=-(10**12), max_value=10**12))
def test_billable_exactly_when_nothing_blocks(
    reading: tuple[int, int, int, int], delta: int
) -> None:
    last_wh, elapsed_s, poll_s, limit = reading
    wh = last_wh + delta
    verdict = judge((T0, last_wh), T0 + timedelta(seconds=elapsed_s), wh,
                    power_limit_w=limit, poll_s=poll_s)
    assert verdict.billable == (not set(verdict.flags) & BLOCKING)
    assert (COUNTER_BACKWARDS in verdict.flags) == (0 <= wh < last_wh)
    assert (GAP in verdict.flags) == (elapsed_s > 3 * poll_s)
    if wh < 0:
        assert verdict.flags[0] == OUT_OF_RANGE


@given(readings, st.data())
def test_what_the_supply_can_carry_is_billed(
    reading: tuple[int, int, int, int], data: st.DataObject
) -> None:
    last_wh, elapsed_s, poll_s, limit = reading
    # anything up to the supply limit over the elapsed time is billable
    most = limit * elapsed_s // 3600
    delta = data.draw(st.integers(min_value=0, max_value=most))
    verdict = judge((T0, last_wh), T0 + timedelta(seconds=elapsed_s), last_wh + delta,
                    power_limit_w=limit, poll_s=poll_s)
    assert verdict.billable
    # and past 1.45 times it (plus the step and flooring Wh) it is absurd
    too_much = max_energy_wh(limit, Decimal(elapsed_s)) + 1
    verdict = judge((T0, last_wh), T0 + timedelta(seconds=elapsed_s), last_wh + too_much,
                    power_limit_w=limit, poll_s=poll_s)
    assert ABSURD_JUMP in verdict.flags and not verdict.billable


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_backwards_until_it_passes_the_billed_value(last_wh: int, behind: int) -> None:
    at = T0 + timedelta(minutes=1)
    last = (T0, last_wh)
    assert not judge(last, at, last_wh - behind, power_limit_w=THREE_PHASE, poll_s=60).billable
    assert judge(last, at, last_wh, power_limit_w=THREE_PHASE, poll_s=60).billable


@given(st.one_of(st.none(), st.tuples(st.just(T0), st.integers(0, 10**12))))
def test_nan_is_never_billable(last: tuple[datetime, int] | None) -> None:
    verdict = judge(last, T0 + timedelta(minutes=1), None, power_limit_w=THREE_PHASE, poll_s=60)
    assert NOT_A_NUMBER in verdict.flags and not verdict.billable
