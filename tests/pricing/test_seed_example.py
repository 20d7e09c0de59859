"""Seed 003 (be.ENERGISED Staffelpreise): the worked example, in interval-table and tier form."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.pricing.documents import energy, price, tariff, time

INTERVAL_FORM = tariff(
    {"dimension": "time", "interval_s": 60,
     "intervals": [[2, "0.00"], [3, "0.1251"], [4, "0.0417"]]},
    {"dimension": "energy", "interval_wh": 100,
     "intervals": [[2, "0.00"], [3, "0.75"], [4, "0.25"]]},
)

# The same economics as tiers: 0.0417 per minute is 2.502 per hour; the first two minutes and
# 200 Wh are a grace that is billed back once exceeded, in whole minutes and 100 Wh steps.
TIER_FORM = tariff(
    time((0, "2.502"), step_s=60, grace_s=120),
    energy((0, "0.25"), step_wh=100, grace_wh=200),
)

CASES = [
    (90, 150, "0.0000", "0.00"),
    (180, 300, "0.2001", "0.24"),
    (3600, 11000, "5.2520", "6.30"),
]


@pytest.mark.parametrize("form", [INTERVAL_FORM, TIER_FORM], ids=["intervals", "tiers"])
@pytest.mark.parametrize(("seconds", "wh", "net", "gross"), CASES)
def test_seed_worked_example(form: object, seconds: int, wh: int, net: str, gross: str) -> None:
    bill = price(form, (0, 0), (seconds, wh))  # type: ignore[arg-type]
    assert bill.net == Decimal(net)
    assert bill.gross == Decimal(gross)
    assert bill.vat == bill.gross - bill.net


def test_one_hour_is_5_2520_net_and_6_30_gross_with_lines_per_row() -> None:
    bill = price(INTERVAL_FORM, (0, 0), (3600, 11000))
    assert (bill.net, bill.vat, bill.gross) == (Decimal("5.2520"), Decimal("1.0480"),
                                               Decimal("6.30"))
    time_lines = [(ln.tier, ln.quantity, ln.unit_price, ln.net)
                  for ln in bill.lines if ln.dimension == "time"]
    assert time_lines == [
        (None, 60, Decimal("0"), Decimal("0.0000")),  # interval 1, before the first row
        (0, 60, Decimal("0.00"), Decimal("0.0000")),
        (1, 60, Decimal("0.1251"), Decimal("0.1251")),
        (2, 3420, Decimal("0.0417"), Decimal("2.3769")),
    ]
    assert sum(ln.net for ln in bill.lines if ln.dimension == "time") == Decimal("2.5020")
    assert sum(ln.net for ln in bill.lines if ln.dimension == "energy") == Decimal("2.7500")


def test_started_interval_is_billed_in_full() -> None:
    # 2:01 is inside the third minute, which is billed in full (with the first two).
    assert price(INTERVAL_FORM, (0, 0), (121, 0)).net == Decimal("0.1251")
    # 201 Wh starts the third 100 Wh interval: 300 Wh at 0.75/kWh... billed as 0.075.
    assert price(INTERVAL_FORM, (0, 0), (60, 201)).net == Decimal("0.0750")
    # exactly two minutes has started two intervals only
    assert price(INTERVAL_FORM, (0, 0), (120, 200)).net == Decimal("0.0000")


def test_rows_before_the_first_cost_nothing_and_last_row_runs_on() -> None:
    t = tariff({"dimension": "time", "interval_s": 600, "intervals": [[3, "1.00"]]})
    assert price(t, (0, 0), (1200, 0)).net == Decimal("0.0000")  # intervals 1, 2
    assert price(t, (0, 0), (1201, 0)).net == Decimal("1.0000")  # interval 3
    assert price(t, (0, 0), (36000, 0)).net == Decimal("58.0000")  # intervals 3..60
