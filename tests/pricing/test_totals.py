"""Totals: min/max price, VAT, rounding."""

from __future__ import annotations

from decimal import Decimal

from pricing import bill_to_json
from tests.pricing.documents import energy, flat, price, tariff, time

D = Decimal


def test_min_price_is_a_floor_only_when_the_session_costs_something() -> None:
    t = tariff(energy((0, "0.30"), grace_wh=200), min_price="0.50")
    bill = price(t, (0, 0), (60, 1000))
    assert bill.net == D("0.5000") and bill.adjustment == "min_price"
    assert bill.subtotal == D("0.3000")
    free = price(t, (0, 0), (60, 100))
    assert free.net == D("0") and free.adjustment is None


def test_max_price_caps_net() -> None:
    t = tariff(energy((0, "0.30")), max_price="30.00")
    bill = price(t, (0, 0), (36000, 200000))
    assert bill.net == D("30.0000") and bill.adjustment == "max_price"
    assert bill.gross == D("36.00")
    doc = bill_to_json(bill)
    assert doc["adjustment"] == {"rule": "max_price", "subtotal": "60.0000"}


def test_min_equal_max_is_allowed() -> None:
    t = tariff(flat("1"), min_price="2", max_price="2")
    assert price(t, (0, 0)).net == D("2.0000")


def test_net_is_the_exact_sum_of_lines_then_rounded_half_up_to_four_places() -> None:
    # three lines of 1/3 cent-ish amounts: rounding each first would give a different total
    t = tariff(time((0, "0.0001")), energy((0, "0.00005")))
    bill = price(t, (0, 0), (1800, 1000))
    # time: 0.00005 exactly, energy 0.00005 exactly: sum 0.0001 (each line shows 0.0001)
    assert bill.subtotal == D("0.0001")
    assert [line.net for line in bill.lines] == [D("0.0001"), D("0.0001")]


def test_half_up_rounding_of_net() -> None:
    t = tariff(energy((0, "0.00005")))  # 0.00005 per kWh
    assert price(t, (0, 0), (60, 1000)).subtotal == D("0.0001")  # 0.00005 -> 0.0001
    assert price(t, (0, 0), (60, 999)).subtotal == D("0.0000")  # 0.00004995 -> 0.0000


def test_vat_is_never_negative_when_gross_rounds_below_net() -> None:
    # 10 Wh at 0.39/kWh: net 0.0039, gross 0.0046 rounds to 0.00: nothing is charged.
    few_wh = price(tariff(energy((0, "0.39"))), (0, 0), (60, 10))
    assert (few_wh.net, few_wh.vat, few_wh.gross) == (D("0.0000"), D("0.0000"), D("0.00"))
    # 0 % VAT: net 3.3331 is paid as 3.33; net follows, VAT stays 0 (and a net rounded up
    # to the cent is no VAT either).
    untaxed = price(tariff(energy((0, "0.33331")), vat_percent="0"), (0, 0), (60, 10000))
    assert (untaxed.net, untaxed.vat, untaxed.gross) == (D("3.3300"), D("0.0000"), D("3.33"))
    assert untaxed.subtotal == D("3.3331")
    up = price(tariff(energy((0, "0.1251")), vat_percent="0"), (0, 0), (60, 1000))
    assert (up.net, up.vat, up.gross) == (D("0.1300"), D("0.0000"), D("0.13"))
    # Otherwise net keeps its four places and VAT is the rest of the rounded gross.
    usual = price(tariff(energy((0, "0.39"))), (0, 0), (60, 1234))
    assert (usual.net, usual.vat, usual.gross) == (D("0.4813"), D("0.0987"), D("0.58"))


def test_gross_is_net_times_vat_half_up_to_cents_and_vat_is_the_difference() -> None:
    t = tariff(flat("1.0125"), vat_percent="20")
    bill = price(t, (0, 0))
    assert bill.net == D("1.0125")
    assert bill.gross == D("1.22")  # 1.215 -> 1.22 half-up
    assert bill.vat == D("0.2075")
    t = tariff(flat("10"), vat_percent="19")
    assert price(t, (0, 0)).gross == D("11.90")
    t = tariff(flat("10"), vat_percent="0")
    bill = price(t, (0, 0))
    assert (bill.gross, bill.vat) == (D("10.00"), D("0.0000"))


def test_bill_json_has_amounts_as_strings() -> None:
    t = tariff(time((0, "2.50")), energy((0, "0.25")))
    doc = bill_to_json(price(t, (0, 0), (3600, 11000)))
    assert doc["currency"] == "EUR"
    assert (doc["net"], doc["vat"], doc["gross"]) == ("5.2500", "1.0500", "6.30")
    assert doc["lines"][0] == {
        "dimension": "time", "component": 0, "name": None, "tier": 0, "window": None,
        "quantity": 3600, "unit": "s", "unit_price": "2.50", "per": "h", "net": "2.5000",
        "note": None,
    }
    assert "adjustment" not in doc and "recovery" not in doc


def test_prices_as_numbers_are_read_from_decimal_text() -> None:
    t = tariff(energy((0, 0.1)))  # type: ignore[arg-type]
    assert t.components[0].tiers[0].price == D("0.1")  # type: ignore[union-attr]
    t = tariff(energy((0, D("0.1251"))))  # type: ignore[arg-type]
    assert price(t, (0, 0), (60, 1000)).net == D("0.1251")
