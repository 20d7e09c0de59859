"""Load curves of the emulators: the energy they report is the exact integral of the power
they report, and the demo programmes have the shape the cycle controller looks for."""

from __future__ import annotations

import itertools

import pytest

from csms.simulator.loads import DRYER, PROGRAMMES, WASHER, ConstantLoad, Programme, household_load


def riemann_ws(curve: ConstantLoad | Programme, start: float, end: float, step: float) -> float:
    total, t = 0.0, start
    while t < end:
        total += curve.watts_at(t + step / 2) * step
        t += step
    return total


def test_a_programme_integrates_its_steps_and_then_standby() -> None:
    programme = Programme("test", ((10, 100.0), (5, 2000.0)), standby_w=1.0)
    assert programme.duration_s == 15
    assert [programme.watts_at(t) for t in (0, 9.99, 10, 14.9, 15, 1e6)] == [
        100, 100, 2000, 2000, 1, 1,
    ]
    assert programme.energy_ws(0, 10) == 1000
    assert programme.energy_ws(8, 12) == 2 * 100 + 2 * 2000
    assert programme.energy_ws(14, 115) == 2000 + 100
    assert programme.energy_ws(5, 5) == 0
    assert programme.energy_ws(-5, 0) == 0  # before the machine was switched on


@pytest.mark.parametrize("name", sorted(PROGRAMMES))
def test_demo_programmes_start_heat_tumble_and_end_within_three_minutes(name: str) -> None:
    programme = PROGRAMMES[name]
    watts = [w for _, w in programme.steps]
    assert watts[0] < 10  # a few seconds below the controller's start_w
    assert watts[-1] < 5  # and the end: below end_w before standby
    assert programme.standby_w == 1
    assert programme.duration_s <= 180
    assert programme.energy_ws(0, 600) == pytest.approx(riemann_ws(programme, 0, 600, 0.5))
    if programme in (WASHER, DRYER):
        assert max(watts) > 1900  # heating
        assert any(150 <= w <= 250 for w in watts)  # tumbling


def test_a_household_load_wanders_within_its_bounds_and_integrates_exactly() -> None:
    load = household_load(3, low_w=150, high_w=900)
    samples = [load.watts_at(t) for t in range(0, 6 * 3600, 30)]
    assert min(samples) >= 150 and max(samples) <= 900
    assert max(samples) - min(samples) > 200  # it does vary
    # slowly: never more than 3 W per second
    assert max(abs(b - a) for a, b in itertools.pairwise(samples)) < 30 * 3
    exact = load.energy_ws(1000, 8200)
    numeric = sum(load.watts_at(1000 + t + 0.5) for t in range(7200))
    assert exact == pytest.approx(numeric, rel=1e-6)
    assert household_load(3) == load and household_load(4) != load
