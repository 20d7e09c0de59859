"""The cycle state machine over recorded power profiles (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from amenities.cycle import (
    Cycle,
    CycleSettings,
    CycleState,
    EndReason,
    on_power,
    on_time,
    stopped,
    tapped,
)
from tests.amenities.power_profiles import (
    DRYER,
    NEVER_STARTED,
    WASHER,
    Profile,
    first_above,
    last_above,
    samples,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEFAULT = CycleSettings()


def run(profile: Profile, settings: CycleSettings = DEFAULT) -> tuple[Cycle, list[CycleState]]:
    cycle = tapped(T0)
    seen = [cycle.state]
    for at, watts in samples(profile, T0, settings.poll_s):
        cycle = on_power(cycle, settings, at, watts)
        if cycle.state != seen[-1]:
            seen.append(cycle.state)
        if not cycle.open:
            break
    return cycle, seen


def test_washer_runs_through_heating_pauses_and_spin_and_ends_when_power_falls() -> None:
    cycle, seen = run(WASHER)
    assert cycle.state is CycleState.DONE
    assert cycle.end_reason is EndReason.POWER_OFF
    # Started at the first heating peak (the 8 W inlet valve is below start_w) ...
    assert cycle.started_at == T0 + timedelta(seconds=first_above(WASHER, 10))
    # ... and ended when the pump-out fell below end_w, not when we became sure of it.
    assert cycle.ended_at == T0 + timedelta(seconds=last_above(WASHER, 5))
    # Drum reversals and rinse pauses (< 180 s) went to ending and back to running.
    assert seen.count(CycleState.ENDING) > 10
    assert seen[-1] is CycleState.DONE


def test_dryer_anti_crease_pauses_do_not_end_it_with_the_default_settings() -> None:
    cycle, _ = run(DRYER)
    assert cycle.state is CycleState.DONE
    # The last anti-crease tumble (10 s at 160 W) is the end: 30 tumbles after the heating.
    assert cycle.ended_at == T0 + timedelta(seconds=last_above(DRYER, 5))
    assert cycle.running_s(T0) > 14 * 320 + 29 * 120


def test_a_shorter_end_after_s_ends_the_dryer_at_its_first_anti_crease_pause() -> None:
    cycle, _ = run(DRYER, CycleSettings(end_after_s=60))
    assert cycle.state is CycleState.DONE
    heating_end = T0 + timedelta(seconds=20 + 14 * 320)
    assert cycle.ended_at is not None and cycle.ended_at <= heating_end + timedelta(seconds=130)


def test_a_machine_never_started_is_abandoned_with_nothing_to_bill() -> None:
    cycle, seen = run(NEVER_STARTED)
    assert seen == [CycleState.AUTHORISED, CycleState.ABANDONED]
    assert cycle.end_reason is EndReason.ABANDONED
    assert not cycle.billable
    assert cycle.ended_at == T0 + timedelta(seconds=600)
    assert cycle.running_s(T0 + timedelta(hours=1)) == 0


def test_abandon_also_follows_the_clock_without_any_reading() -> None:
    cycle = tapped(T0)
    assert on_time(cycle, DEFAULT, T0 + timedelta(seconds=599)).state is CycleState.AUTHORISED
    assert on_time(cycle, DEFAULT, T0 + timedelta(seconds=600)).state is CycleState.ABANDONED


def test_maximum_duration_ends_a_machine_that_never_stops() -> None:
    settings = CycleSettings(max_s=3600)
    cycle = on_power(tapped(T0), settings, T0 + timedelta(seconds=5), Decimal(500))
    for minute in range(1, 70):
        cycle = on_power(cycle, settings, T0 + timedelta(seconds=5 + 60 * minute), Decimal(500))
    assert cycle.state is CycleState.DONE
    assert cycle.end_reason is EndReason.MAX_DURATION
    assert cycle.ended_at == T0 + timedelta(seconds=5 + 3600)


def test_lost_readings_end_the_cycle_at_the_last_reading() -> None:
    cycle = on_power(tapped(T0), DEFAULT, T0 + timedelta(seconds=5), Decimal(2000))
    last = T0 + timedelta(seconds=65)
    cycle = on_power(cycle, DEFAULT, last, Decimal(2000))
    assert on_time(cycle, DEFAULT, last + timedelta(seconds=179)).open
    ended = on_time(cycle, DEFAULT, last + timedelta(seconds=180))
    assert ended.state is CycleState.DONE
    assert ended.end_reason is EndReason.READINGS_LOST
    assert ended.ended_at == last


def test_a_stop_bills_up_to_the_last_reading_and_never_beyond() -> None:
    cycle = on_power(tapped(T0), DEFAULT, T0 + timedelta(seconds=5), Decimal(2000))
    cycle = on_power(cycle, DEFAULT, T0 + timedelta(seconds=10), Decimal(2000))
    ended = stopped(cycle, T0 + timedelta(seconds=40))
    assert ended.state is CycleState.DONE and ended.ended_at == T0 + timedelta(seconds=10)
    assert stopped(tapped(T0), T0 + timedelta(seconds=3)).state is CycleState.ABANDONED


def test_late_or_repeated_readings_never_move_a_cycle_back() -> None:
    cycle = on_power(tapped(T0), DEFAULT, T0 + timedelta(seconds=10), Decimal(300))
    same = on_power(cycle, DEFAULT, T0 + timedelta(seconds=5), Decimal(0))
    assert same == cycle
    done, _ = run(WASHER)
    assert on_power(done, DEFAULT, T0 + timedelta(days=1), Decimal(2000)) == done


@pytest.mark.parametrize("power", ["10", "9.9"])
def test_start_needs_power_above_start_w(power: str) -> None:
    cycle = on_power(tapped(T0), DEFAULT, T0 + timedelta(seconds=5), Decimal(power))
    assert cycle.state is CycleState.AUTHORISED


def test_settings_from_the_site_file_block_keep_defaults() -> None:
    settings = CycleSettings.of({"end_after_s": 300, "start_w": 20})
    assert settings == CycleSettings(end_after_s=300, start_w=20)
    assert CycleSettings.of(None) == DEFAULT
