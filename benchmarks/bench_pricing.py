"""Pricing speed: rates per second, live update cost, long sessions, and what cost grows with.

Targets (issue 3): a typical session (two samples, three components) >= 20,000 rates/s on one
core; one LiveRater update < 50 us; a 24 h session of 1,440 samples < 5 ms; cost grows with the
tiers and windows crossed, not with the number of samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pricing import LiveRater, Sample, Tariff, Usage, load_tariff, rate

START = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # a Monday


def _best(action: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best seconds per call over `repeat` rounds of `number` calls."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(number):
            action()
        best = min(best, (time.perf_counter() - began) / number)
    return best


def _tariff(*components: dict[str, Any], **top: Any) -> Tariff:
    return load_tariff({"id": "bench", "currency": "EUR", "vat_percent": "20",
                        "timezone": "Europe/Vienna", "components": list(components), **top})


TYPICAL = _tariff(
    {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.25"},
                                      {"from_wh": 50000, "price": "0"}],
     "step_wh": 100, "grace_wh": 200},
    {"dimension": "time", "tiers": [{"from_s": 0, "price": "2.50"},
                                    {"from_s": 14400, "price": "0"}],
     "step_s": 60, "grace_s": 120},
    {"dimension": "flat", "price": "0.50"},
)
HT_NT = _tariff(
    {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.30"}],
     "when": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "06:00", "to": "22:00"}},
    {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.20"}]},
    {"dimension": "time", "tiers": [{"from_s": 0, "price": "2.50"},
                                    {"from_s": 14400, "price": "0"}], "step_s": 60},
    {"dimension": "idle", "tiers": [{"from_s": 0, "price": "6.00"}], "free_s": 1800},
    {"dimension": "flat", "price": "0.50"},
    max_price="30",
)


def _session(samples: int, minutes: float, wh_per_minute: int = 7) -> Usage:
    step = minutes / max(samples - 1, 1)
    return Usage.of(
        Sample(START + timedelta(minutes=step * i), round(wh_per_minute * step * i),
               i % 10 != 9)
        for i in range(samples)
    )


def main() -> None:
    typical = _session(2, 62)
    per = _best(lambda: rate(TYPICAL, typical), 20000)
    print(f"typical session (2 samples, 3 components):   {1 / per:>10,.0f} rates/s "
          f"({per * 1e6:.1f} us)  [target >= 20,000]")
    per = _best(lambda: rate(HT_NT, typical), 20000)
    print(f"same session, HT/NT windows + idle + cap:     {1 / per:>10,.0f} rates/s "
          f"({per * 1e6:.1f} us)")

    day = _session(1441, 1440)
    samples = list(day.samples)

    def live_session() -> None:
        live = LiveRater(HT_NT)
        for sample in samples:
            live.add(sample)

    per = _best(live_session, 1, 7) / len(samples)
    print(f"LiveRater update (24 h, HT/NT tariff):        {per * 1e6:>10.1f} us/update  "
          "[target < 50]")
    per = _best(lambda: rate(HT_NT, day), 200)
    print(f"24 h session, 1,441 samples, HT/NT:           {per * 1e3:>10.3f} ms  [target < 5]")

    print("cost against session length (HT/NT, 2 h, boundaries fixed):")
    for count in (2, 10, 100, 1000, 10000):
        usage = _session(count, 120)
        per = _best(lambda usage=usage: rate(HT_NT, usage), 2000)  # type: ignore[misc]
        print(f"  {count:>6} samples  {per * 1e6:8.1f} us")
    print("cost against windows crossed (HT/NT, 1,441 samples spread over the span):")
    for days in (1, 7, 31):
        usage = _session(1441, 1440 * days)
        per = _best(lambda usage=usage: rate(HT_NT, usage), 200)  # type: ignore[misc]
        print(f"  {days:>3} days ({2 * days:>2}+ boundaries)  {per * 1e6:8.1f} us")
    print("cost against tiers crossed (energy tiers every 100 Wh, 2 samples):")
    for tiers in (1, 10, 100, 1000):
        tiered = _tariff({"dimension": "energy", "tiers": [
            {"from_wh": 100 * i, "price": f"0.{i % 90 + 10}"} for i in range(tiers)]})
        usage = _session(2, 1000, 100)
        per = _best(lambda t=tiered, usage=usage: rate(t, usage), 500)  # type: ignore[misc]
        print(f"  {tiers:>5} tiers  {per * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
