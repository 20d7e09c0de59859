"""Price previews (cost curves) and the explained bill."""

from __future__ import annotations

from decimal import Decimal

from pricing import cost_curve, explain
from tests.pricing.documents import energy, idle, price, session, tariff, time

D = Decimal


def test_time_curve_shows_grace_then_minutes_billed() -> None:
    t = tariff(time((0, "2.502"), step_s=60, grace_s=120))
    curve = cost_curve(t, session((0, 0), (300, 0)), "time")
    assert [(p.x, p.net) for p in curve] == [
        (D(0), D("0")), (D(1), D("0")), (D(2), D("0")), (D(3), D("0.1251")),
        (D(4), D("0.1668")), (D(5), D("0.2085"))]


def test_energy_curve_cuts_where_the_register_reaches_each_step() -> None:
    t = tariff(energy((0, "0.25"), (2000, "0")))
    curve = cost_curve(t, session((0, 0), (3600, 3000)), "energy", step=1000)
    assert [(p.x, p.net) for p in curve] == [
        (D(0), D(0)), (D(1), D("0.2500")), (D(2), D("0.5000")), (D(3), D("0.5000"))]
    assert (curve[1].at - curve[0].at).total_seconds() == 1200


def test_curve_last_point_is_the_bill() -> None:
    t = tariff(energy((0, "0.3")), idle((0, "6"), free_s=600))
    usage = session((0, 0), (1000, 3000), (2500, 3000, False))
    from pricing import rate

    assert cost_curve(t, usage, "time", 7)[-1].net == rate(t, usage).net


def test_explain_lists_every_line_and_the_totals() -> None:
    t = tariff(energy((0, "0.25"), (10000, "0.20"), name="energy"), time((0, "2.50")),
               max_price="4")
    text = explain(price(t, (0, 0), (3600, 11000)))
    assert "energy     #0 energy" in text
    assert "10000 Wh" in text and "0.25/kWh" in text and "2.5000" in text
    assert "max price applied" in text
    assert text.splitlines()[-1].startswith("gross (EUR)")
    assert text.splitlines()[-1].endswith("4.80")
