"""The node's collector settings: startup's objects frozen, the youngest generation larger."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from csms.collector import tune_collector


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
