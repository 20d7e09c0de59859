"""LiveRater: the running cost equals rating all samples so far; bad samples change nothing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pricing import LiveRater, Sample, TariffError, Usage, rate
from tests.pricing.documents import energy, flat, idle, tariff, time

D = Decimal


def test_running_cost_ends_equal_to_the_final_bill() -> None:
    t = tariff(
        energy((0, "0.30"), when={"days": ["mon", "tue", "wed", "thu", "fri"],
                                  "from": "06:00", "to": "22:00"}, step_wh=100),
        energy((0, "0.20"), step_wh=100),
        time((0, "1.00"), (7200, "0"), step_s=60, grace_s=120),
        idle((0, "6.00"), free_s=1800),
        flat("0.50"),
        {"dimension": "demand", "price": "3"},
        {"dimension": "day", "price": "0.10"},
        timezone="Europe/Vienna", max_price="40",
    )
    start = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    samples = [Sample(start + timedelta(minutes=7 * i), 173 * i, i % 5 != 4) for i in range(60)]
    live = LiveRater(t)
    running = [live.add(sample) for sample in samples]
    assert running[-1] == rate(t, Usage.of(samples))
    assert live.count == 60
    assert all(a.total <= b.total for a, b in itertools.pairwise(running))
    # the first bill is the zero-length session: only the flat fee... inside the time grace
    assert running[0].void and running[0].net == D(0)


def test_bad_sample_raises_and_changes_nothing() -> None:
    t = tariff(energy((0, "1")))
    live = LiveRater(t)
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)
    live.add(Sample(start, 100))
    with pytest.raises(TariffError) as caught:
        live.add(Sample(start, 50))
    assert caught.value.problems == (
        "samples[1].at: 2026-03-02T10:00:00+00:00 is not after samples[0].at "
        "2026-03-02T10:00:00+00:00 (timestamps must strictly increase)",
        "samples[1].energy_wh: decreases from 100 to 50 (the register never decreases)",
    )
    with pytest.raises(TariffError, match="must be a datetime with a UTC offset"):
        live.add(Sample(datetime(2026, 3, 2, 11), 200))
    assert live.count == 1
    assert live.add(Sample(start + timedelta(hours=1), 1100)).net == D("1.0000")
