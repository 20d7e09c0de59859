"""The node's collector settings: startup's objects frozen, the youngest generation larger;
a fleet's objects frozen once it settled, and collected again after a quarter of it left."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from csms.collector import (
    GEN0_THRESHOLD,
    CollectorFreezer,
    FleetCount,
    FreezeBaseline,
    FreezeReport,
    freeze_due,
    tune_collector,
    tuned_collector,
)


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_startup_objects_are_frozen_and_gen0_waits_longer() -> None:
    _, gen1, gen2 = gc.get_threshold()
    tune_collector(12_345)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (12_345, gen1, gen2)


@pytest.mark.usefixtures("restored_collector")
def test_a_threshold_below_one_is_refused_and_changes_nothing() -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="gen0_threshold"):
        tune_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


# freezing again once a fleet settled: the decision

def test_a_fleet_that_grew_by_the_minimum_is_frozen_once_settled() -> None:
    baseline = FreezeBaseline()
    assert freeze_due(baseline, FleetCount(499, 0, settling=False)) is None
    assert freeze_due(baseline, FleetCount(500, 0, settling=True)) is None
    assert freeze_due(baseline, FleetCount(500, 0, settling=False)) == "freeze"


def test_growth_and_departures_count_from_the_last_freeze_as_a_quarter_of_its_fleet() -> None:
    baseline = FreezeBaseline(connected=10_000, departed=300)
    assert freeze_due(baseline, FleetCount(12_499, 300, settling=False)) is None
    assert freeze_due(baseline, FleetCount(12_500, 300, settling=False)) == "freeze"
    # Stations that left may have left cycles among the frozen objects: collect them first.
    assert freeze_due(baseline, FleetCount(10_000, 2_799, settling=False)) is None
    assert freeze_due(baseline, FleetCount(10_000, 2_800, settling=False)) == "refreeze"
    assert freeze_due(baseline, FleetCount(10_000, 2_800, settling=True)) is None


def test_a_small_site_never_freezes_after_startup() -> None:
    counts = [FleetCount(n, n // 2, settling=False) for n in range(0, 400, 7)]
    assert all(freeze_due(FreezeBaseline(), count) is None for count in counts)


# freezing again: what the freezer does to the collector


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("restored_collector")
def test_a_freeze_keeps_what_is_alive_and_a_refreeze_collects_frozen_cycles() -> None:
    fleet = FleetCount(0, 0, settling=False)
    freezer = CollectorFreezer(lambda: fleet, min_change=2)
    gc.collect()
    assert freezer.step() is None

    alive = [_Cycle() for _ in range(100)]
    # A station's cycle that became garbage after a collection moved it to the old generation:
    # reference counting alone does not free it, and a freeze does not walk that generation.
    departed = _Cycle()
    gc.collect()
    del departed
    fleet = FleetCount(2, 0, settling=False)
    frozen = freezer.step()
    assert frozen is not None and frozen.step == "freeze" and frozen.stations == 2
    assert gc.get_freeze_count() >= 101
    assert freezer.baseline == FreezeBaseline(connected=2, departed=0)
    assert freezer.step() is None  # nothing changed since

    before = sum(isinstance(o, _Cycle) for o in gc.get_objects())
    assert before == 0  # frozen objects are not among the collector's
    fleet = FleetCount(2, 2, settling=False)
    refrozen = freezer.step()
    assert refrozen is not None and refrozen.step == "refreeze"
    assert refrozen.collected >= 1
    gc.unfreeze()
    assert sum(isinstance(o, _Cycle) for o in gc.get_objects()) == len(alive)


@pytest.mark.usefixtures("restored_collector")
async def test_the_freezer_checks_periodically_and_reports_each_freeze() -> None:
    fleet = FleetCount(3, 0, settling=True)
    reports: list[FreezeReport] = []
    freezer = CollectorFreezer(lambda: fleet, interval_s=0.01, min_change=3)
    task = asyncio.create_task(freezer.run(reports.append))
    try:
        await asyncio.sleep(0.1)
        assert reports == []  # still settling
        fleet = FleetCount(3, 0, settling=False)
        async with asyncio.timeout(5):
            while not reports:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert [r.step for r in reports] == ["freeze"]
    finally:
        task.cancel()


@pytest.mark.usefixtures("restored_collector")
async def test_a_tuned_collector_freezes_startup_and_stops_its_freezer_on_leaving() -> None:
    def names() -> set[str]:
        return {task.get_name() for task in asyncio.all_tasks()}

    async with tuned_collector(lambda: FleetCount(0, 0, settling=False)):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
        assert "collector-freezer" in names()
    await asyncio.sleep(0)
    assert "collector-freezer" not in names()
