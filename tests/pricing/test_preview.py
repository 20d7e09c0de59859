"""The owner's preview: curves, worked examples, and seed 003's interval table read back from
the rating itself, row by row."""

from __future__ import annotations

from decimal import Decimal

from pricing import load_tariff
from pricing.preview import preview
from tests.pricing.documents import MONDAY

SEED_003 = {
    "id": "seed", "currency": "EUR", "vat_percent": "20", "components": [
        {"dimension": "time", "interval_s": 60,
         "intervals": [[2, "0.00"], [3, "0.1251"], [4, "0.0417"]]},
        {"dimension": "energy", "interval_wh": 100,
         "intervals": [[2, "0.00"], [3, "0.75"], [4, "0.25"]]},
    ]}


def test_seed_003_reads_as_its_table() -> None:
    shown = preview(load_tariff(SEED_003), SEED_003, MONDAY)
    time_rows = [(r.interval, r.adds_net) for r in shown.intervals if r.dimension == "time"]
    energy_rows = [(r.interval, r.adds_net) for r in shown.intervals
                   if r.dimension == "energy"]
    # Intervals 1 and 2 cost nothing, the third brings the first three (0.1251), then 0.0417.
    assert time_rows == [(1, Decimal("0.0000")), (2, Decimal("0.0000")),
                         (3, Decimal("0.1251")), (4, Decimal("0.0417")),
                         (5, Decimal("0.0417"))]
    # 100 Wh intervals at a price per kWh: the third at 0.75/kWh (0.075), then 0.25/kWh (0.025).
    assert energy_rows == [(1, Decimal("0.0000")), (2, Decimal("0.0000")),
                           (3, Decimal("0.0750")), (4, Decimal("0.0250")),
                           (5, Decimal("0.0250"))]
    hour = next(e for e in shown.examples if e.minutes == 60)
    assert (hour.net, hour.gross) == (Decimal("5.2520"), Decimal("6.30"))  # the seed's hour


def test_curves_rise_with_time_and_energy() -> None:
    doc = {"id": "t", "currency": "EUR", "vat_percent": "19", "components": [
        {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.40"}]}]}
    shown = preview(load_tariff(doc), doc, MONDAY, power_w=11_000, minutes=60)
    assert shown.by_minutes[0][1] == 0 and shown.by_minutes[-1][1] == Decimal("5.24")
    assert shown.by_kwh[-1][0] == Decimal(11)
    costs = [g for _, g in shown.by_kwh]
    assert costs == sorted(costs)
