"""The contract's rating rules, one by one, on sessions without time-of-use windows."""

from __future__ import annotations

from decimal import Decimal

from tests.pricing.documents import energy, flat, idle, lines_of, price, tariff, time

D = Decimal


def test_tiers_price_each_unit_by_the_cumulative_quantity() -> None:
    t = tariff(energy((0, "0.30"), (10000, "0.20"), (20000, "0.10")))
    bill = price(t, (0, 0), (3600, 25000))
    # 10 kWh x 0.30 + 10 kWh x 0.20 + 5 kWh x 0.10
    assert bill.net == D("5.5000")
    assert lines_of(bill, "energy") == [
        (0, 0, 10000, D("3.0000"), None),
        (0, 1, 10000, D("2.0000"), None),
        (0, 2, 5000, D("0.5000"), None),
    ]


def test_a_zero_tier_caps_the_dimension() -> None:
    t = tariff(energy((0, "0.25"), (50000, "0")))
    assert price(t, (0, 0), (3600, 50000)).net == D("12.5000")
    assert price(t, (0, 0), (36000, 90000)).net == D("12.5000")


def test_time_tiers_per_hour_and_a_zero_tier_after_four_hours() -> None:
    t = tariff(time((0, "2.50"), (14400, "0")))
    assert price(t, (0, 0), (1800, 0)).net == D("1.2500")
    assert price(t, (0, 0), (20000, 0)).net == D("10.0000")


def test_step_rounds_the_session_total_up_once() -> None:
    t = tariff(time((0, "0.60"), step_s=60))  # one cent per started minute... per 60 s
    # 61 s is two started steps: 120 s at 0.60/h = 0.02
    assert price(t, (0, 0), (61, 0)).net == D("0.0200")
    # many samples: the total is stepped once, not each span
    assert price(t, (0, 0), (61, 0), (122, 0), (183, 0)).net == D("0.0400")
    bill = price(t, (0, 0), (61, 0))
    assert lines_of(bill, "time") == [(0, 0, 61, D("0.0102"), None),
                                     (0, 0, 59, D("0.0098"), "step")]


def test_step_extra_continues_onward_through_the_tiers() -> None:
    t = tariff(energy((0, "1.00"), (1000, "2.00"), step_wh=1000))
    # 1001 Wh steps to 2000 Wh: 1000 at 1.00, then 1000 at 2.00 (1 real + 999 step)
    bill = price(t, (0, 0), (60, 1001))
    assert bill.net == D("3.0000")
    assert lines_of(bill, "energy") == [(0, 0, 1000, D("1.0000"), None),
                                       (0, 1, 1, D("0.0020"), None),
                                       (0, 1, 999, D("1.9980"), "step")]


def test_grace_costs_nothing_up_to_and_including_the_grace() -> None:
    t = tariff(energy((0, "0.25"), grace_wh=200), time((0, "3.00"), grace_s=120))
    bill = price(t, (0, 0), (600, 200))
    assert lines_of(bill, "energy") == [(None, None, 200, D("0.0000"), "grace")]
    assert bill.net == D("0.5000")  # time left its grace and is billed
    assert not bill.void


def test_grace_exceeded_bills_the_stepped_total_from_zero() -> None:
    t = tariff(energy((0, "0.25"), grace_wh=200, step_wh=100))
    assert price(t, (0, 0), (600, 201)).net == D("0.0750")  # 300 Wh, from zero


def test_free_allowance_is_never_billed_back_but_counts_for_tiers() -> None:
    t = tariff(idle((0, "6.00"), (3600, "12.00"), free_s=1800))
    # idle 2 h: first 30 min free, next 30 min at 6/h, second hour at 12/h
    bill = price(t, (0, 0), (7200, 0, False))
    assert bill.net == D("15.0000")
    assert lines_of(bill, "idle") == [(0, 0, 1800, D("0.0000"), "free"),
                                     (0, 0, 1800, D("3.0000"), None),
                                     (0, 1, 3600, D("12.0000"), None)]
    assert price(t, (0, 0), (1700, 0, False)).net == D("0.0000")


def test_free_allowance_applies_to_the_stepped_total() -> None:
    t = tariff(time((0, "3.60"), step_s=600, free_s=600))
    # 601 s steps to 1200 s; the first 600 are free; 600 s at 3.60/h = 0.60
    assert price(t, (0, 0), (601, 0)).net == D("0.6000")


def test_idle_is_the_time_flagged_not_charging() -> None:
    t = tariff(idle((0, "6.00")))
    bill = price(t, (0, 0), (1800, 5000), (3600, 5000, False), (4200, 5000, True),
                 (5400, 5000, False))
    # idle spans: 1800-3600 and 4200-5400 = 3000 s at 6/h
    assert bill.net == D("5.0000")


def test_energy_in_idle_spans_still_counts() -> None:
    t = tariff(energy((0, "0.30")))
    assert price(t, (0, 0), (3600, 1000, False)).net == D("0.3000")


def test_flat_fee_once_per_session() -> None:
    t = tariff(flat("0.50"), energy((0, "0.30")))
    assert price(t, (0, 0)).net == D("0.5000")  # a single sample is a zero-length session
    assert price(t, (0, 0), (60, 1000), (120, 2000)).net == D("1.1000")


def test_session_inside_every_grace_is_void_flat_fee_included() -> None:
    t = tariff(flat("0.50"), energy((0, "0.30"), grace_wh=200), time((0, "3.00"), grace_s=120),
               idle((0, "6.00")))
    bill = price(t, (0, 0), (100, 150), (110, 150, False))
    assert bill.void
    assert bill.net == D("0") and bill.gross == D("0")
    assert all(line.net == 0 for line in bill.lines)
    # one dimension leaves its grace: not void, flat and the rest are billed
    bill = price(t, (0, 0), (130, 150))
    assert not bill.void
    assert bill.net == D("0.6083")  # flat 0.50 + 130 s at 3.00/h; energy in its grace


def test_without_any_grace_no_session_is_void() -> None:
    t = tariff(flat("0.50"), energy((0, "0.30")))
    assert not price(t, (0, 0), (1, 0)).void


def test_session_runs_from_first_to_last_sample() -> None:
    t = tariff(energy((0, "1")), time((0, "3.6")))
    # register starts at 5000: only growth counts; 100 s at 3.6/h = 0.10
    assert price(t, (0, 5000), (100, 6000)).net == D("1.1000")


def test_fractional_seconds_count_and_the_default_step_rounds_to_whole_seconds() -> None:
    t = tariff(time((0, "3600")))  # one per second
    bill = price(t, (0, 0), (1.5, 0))
    assert bill.net == D("2.0000")  # step_s defaults to 1: the started second is billed
    assert lines_of(bill, "time") == [(0, 0, D("1.5"), D("1.5000"), None),
                                     (0, 0, D("0.5"), D("0.5000"), "step")]
