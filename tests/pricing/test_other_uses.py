"""The other uses of one engine: laundry cycles, household HT/NT, base fee per day, demand
price per kW, and a debt-recovery surcharge."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from pricing import Sample, Tariff, TariffError, Usage, bill_to_json, load_tariff, rate
from tests.pricing.documents import VIENNA, energy, flat, price, tariff

D = Decimal


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=VIENNA)


def test_laundry_price_per_cycle_cheaper_at_night() -> None:
    washer = tariff(
        flat("0.80", when={"from": "20:00", "to": "07:00"}, name="night wash"),
        flat("1.50", name="wash"),
        timezone="Europe/Vienna",
    )
    # a cycle is a session; its price is known when it starts (a single sample)
    day = rate(washer, Usage.of([Sample(at(3, 2, 10), 0)]))
    assert (day.net, day.gross) == (D("1.5000"), D("1.80"))
    night = price(washer, (0, 0), (5400, 900), start=at(3, 2, 21))
    assert night.net == D("0.8000")
    assert night.lines[0].name == "night wash"


def test_household_electricity_ht_nt_without_ht_on_holidays() -> None:
    household = tariff(
        energy((0, "0.21"), when={"days": ["sat", "sun", "holiday"]}, name="NT"),
        energy((0, "0.32"), when={"days": ["mon", "tue", "wed", "thu", "fri"],
                                   "from": "06:00", "to": "22:00"}, name="HT"),
        energy((0, "0.21"), name="NT"),
        timezone="Europe/Vienna", country="AT",
    )
    # Monday 5 January 2026 00:00 -> Wednesday 7 January 00:00 at 1 kWh per hour:
    # Mon 06-22 HT (16 kWh), rest NT (8); Tue 6 January is Epiphany: all NT (24).
    usage = Usage.of([Sample(at(1, 5, 0) + timedelta(hours=h), 1000 * h) for h in range(49)])
    bill = rate(household, usage)
    by_name: dict[str | None, Decimal] = {}
    for line in bill.lines:
        by_name[line.name] = by_name.get(line.name, D(0)) + line.quantity
    assert by_name == {"NT": D(32000), "HT": D(16000)}
    assert bill.net == D("16") * D("0.32") + D("32") * D("0.21")


def day_fee(**top: object) -> Tariff:
    return tariff(
        {"dimension": "day", "price": "0.20", "when": {"days": ["sat", "sun", "holiday"]},
         "name": "weekend base fee"},
        {"dimension": "day", "price": "0.45", "name": "base fee"},
        energy((0, "0.30")),
        timezone="Europe/Vienna", country="AT", **top,
    )


def test_base_fee_per_started_local_day() -> None:
    t = day_fee()
    # Monday 10:00 -> Wednesday 10:00: Mon, Tue, Wed started
    bill = price(t, (0, 0), (48 * 3600, 0), start=at(3, 2, 10))
    assert bill.net == D("1.3500")
    # Monday 23:00 -> Tuesday 00:00 (the site's midnight): only Monday
    assert price(t, (0, 0), (3600, 0), start=at(3, 2, 23)).net == D("0.4500")
    # ... one second more and Tuesday has started
    assert price(t, (0, 0), (3601, 0), start=at(3, 2, 23)).net == D("0.9000")
    # a zero-length session starts no day
    assert price(t, (0, 0), start=at(3, 2, 23)).net == D("0")


def test_base_fee_days_split_at_the_sites_midnight_not_utc() -> None:
    t = day_fee()
    # 23:30 UTC on Monday is 00:30 on Tuesday in Vienna: Tuesday only
    start = datetime.fromisoformat("2026-03-02T23:30:00+00:00")
    assert price(t, (0, 0), (3600, 0), start=start).net == D("0.4500")


def test_base_fee_weekend_and_holiday_price() -> None:
    t = day_fee()
    # Friday 12:00 -> Monday 12:00: Fri 0.45, Sat 0.20, Sun 0.20, Mon 0.45
    bill = price(t, (0, 0), (72 * 3600, 0), start=at(3, 6, 12))
    assert bill.net == D("1.3000")
    assert [(ln.name, ln.quantity) for ln in bill.lines if ln.dimension == "day"] == [
        ("weekend base fee", 2), ("base fee", 2)]
    # 24 hours across the DST change still count local days
    assert price(t, (0, 0), (23 * 3600, 0), start=at(3, 29, 0)).net == D("0.2000")


def demand_tariff() -> Tariff:
    return tariff(
        {"dimension": "demand", "price": "10.00", "name": "power price"},
        energy((0, "0.20")),
        timezone="Europe/Vienna",
    )


def test_power_price_per_kw_of_the_highest_quarter_hour_average() -> None:
    t = demand_tariff()
    # readings every 5 minutes; the quarter 10:15-10:30 draws 1500 Wh = 6 kW average
    rises = [200, 200, 200, 500, 500, 500, 100, 100, 100]
    register = [0]
    for rise in rises:
        register.append(register[-1] + rise)
    usage = Usage.of([Sample(at(3, 2, 10) + timedelta(minutes=5 * i), wh)
                      for i, wh in enumerate(register)])
    bill = rate(t, usage)
    demand = next(ln for ln in bill.lines if ln.dimension == "demand")
    assert demand.quantity == D(6) and demand.unit == "kW"
    assert demand.net == D("60.0000")
    assert demand.window == "peak 15 min from 2026-03-02T10:15:00+01:00"
    assert bill.net == D("60.0000") + D("0.4800")


def test_demand_intervals_are_clock_aligned_and_interpolated() -> None:
    t = demand_tariff()
    # 10:10 -> 10:40 at a constant 2 kW: 10:15-10:30 is the only full quarter, 500 Wh
    bill = price(t, (0, 0), (1800, 1000), start=at(3, 2, 10, 10))
    demand = next(ln for ln in bill.lines if ln.dimension == "demand")
    assert demand.quantity == D(2)
    # a short session measures its energy over the whole quarter, never more than real
    bill = price(t, (0, 0), (300, 500), start=at(3, 2, 10, 0))
    assert next(ln for ln in bill.lines if ln.dimension == "demand").quantity == D(2)


def test_demand_validation() -> None:
    with pytest.raises(TariffError) as caught:
        tariff({"dimension": "demand", "price": "1", "interval_s": 7},
               {"dimension": "demand", "price": "1", "when": {"days": ["mon"]}},
               timezone="UTC")
    assert caught.value.problems == (
        "components[0].interval_s: must be >= 60, got 7",
        "components[1].when: unknown key",
        "components[1].dimension: only one demand component allowed (see components[0])",
    )


def recovery_tariff() -> Tariff:
    return tariff(energy((0, "0.30")), timezone="Europe/Vienna", max_price="1.00",
                  debt_recovery={"per_kwh": "0.05", "per_day": "0.30"})


def test_debt_recovery_surcharge_per_kwh_and_daily_rate() -> None:
    t = recovery_tariff()
    bill = price(t, (0, 0), (3600, 10000), start=at(3, 2, 10))
    # consumption: 10 kWh x 0.30 = 3.00, capped by max_price at 1.00; VAT 20 %
    assert (bill.net, bill.gross) == (D("1.0000"), D("1.20"))
    # recovery: 10 kWh x 0.05 + 1 day x 0.30, no VAT, outside the cap
    assert bill.recovery == D("0.80")
    assert bill.total == D("2.00")
    doc = bill_to_json(bill)
    assert (doc["recovery"], doc["total"]) == ("0.80", "2.00")
    assert [(ln["dimension"], ln["per"], ln["net"]) for ln in doc["lines"][-2:]] == [
        ("recovery", "kWh", "0.5000"), ("recovery", "day", "0.3000")]


def test_debt_recovery_validation() -> None:
    doc = {"id": "t", "currency": "EUR", "vat_percent": "20",
           "components": [{"dimension": "flat", "price": "1"}],
           "debt_recovery": {"per_kwh": "-1", "per_week": "2"}}
    with pytest.raises(TariffError) as caught:
        load_tariff(doc)
    assert caught.value.problems == ("debt_recovery.per_week: unknown key",
                                     "debt_recovery.per_kwh: must not be negative, got -1")
    doc["debt_recovery"] = {"per_day": "1"}
    with pytest.raises(TariffError, match="timezone: required because days are counted"):
        load_tariff(doc)
