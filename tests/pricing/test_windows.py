"""Time-of-use windows: days, hours wrapping midnight, holidays, first match, splits, DST."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pricing import Sample, Tariff, Usage, load_tariff, rate
from tests.pricing.documents import VIENNA, energy, flat, lines_of, price, session, tariff, time

D = Decimal
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VIENNA)


def ht_nt(**top: object) -> Tariff:
    return tariff(
        energy((0, "0.30"), when={"days": WEEKDAYS, "from": "06:00", "to": "22:00"}, name="HT"),
        energy((0, "0.20"), name="NT"),
        timezone="Europe/Vienna", **top,
    )


def test_weekday_window_applies_on_weekdays_and_the_fallback_otherwise() -> None:
    t = ht_nt()
    assert price(t, (0, 0), (3600, 1000), start=at(2026, 3, 2, 10)).net == D("0.3000")  # Mon
    assert price(t, (0, 0), (3600, 1000), start=at(2026, 3, 7, 10)).net == D("0.2000")  # Sat


def test_window_boundary_splits_a_span_with_energy_interpolated_linearly() -> None:
    t = ht_nt()
    # Monday 21:00 -> 23:00, 2000 Wh at a constant rate: 1000 Wh HT, 1000 Wh NT
    bill = price(t, (0, 0), (7200, 2000), start=at(2026, 3, 2, 21))
    assert bill.net == D("0.5000")
    assert [(ln.name, ln.quantity, ln.window) for ln in bill.lines] == [
        ("HT", 1000, "mon,tue,wed,thu,fri 06:00-22:00"), ("NT", 1000, None)]


def test_split_keeps_fractions_of_a_wh_exactly() -> None:
    t = ht_nt()
    # 21:00 -> 00:00 with 1000 Wh: a third in HT (333.33.. Wh), two thirds in NT
    bill = price(t, (0, 0), (10800, 1000), start=at(2026, 3, 2, 21))
    ht, nt = bill.lines
    assert ht.quantity == D("333.333333") and nt.quantity == D("666.666667")
    # exact: 1000/3 x 0.30 + 2000/3 x 0.20 = 0.1 + 0.1333.. = 0.2333..
    assert bill.net == D("0.2333")


def test_tiers_count_the_whole_session_across_windows() -> None:
    t = tariff(
        energy((0, "0.30"), (1500, "0.10"), when={"from": "06:00", "to": "22:00"}),
        energy((0, "0.20"), (1500, "0")),
        timezone="Europe/Vienna",
    )
    # 1000 Wh before 22:00 (tier 0 at 0.30), then 1000 Wh after: the night component's tiers
    # continue at 1000 Wh, so 500 Wh at 0.20 and 500 Wh in its zero tier.
    bill = price(t, (0, 0), (7200, 2000), start=at(2026, 3, 2, 21))
    assert bill.net == D("0.4000")
    assert lines_of(bill, "energy") == [(0, 0, 1000, D("0.3000"), None),
                                       (1, 0, 500, D("0.1000"), None),
                                       (1, 1, 500, D("0.0000"), None)]


def test_window_wrapping_midnight_belongs_to_the_day_it_opens() -> None:
    t = tariff(
        time((0, "1.00"), when={"days": ["mon"], "from": "22:00", "to": "06:00"}),
        time((0, "0")),
        timezone="Europe/Vienna",
    )
    one_hour = ((0, 0), (3600, 0))
    assert price(t, *one_hour, start=at(2026, 3, 3, 3)).net == D("1.0000")  # Tue 03:00
    assert price(t, *one_hour, start=at(2026, 3, 2, 3)).net == D("0.0000")  # Mon 03:00


def test_saturday_early_hours_belong_to_fridays_window() -> None:
    t = tariff(
        time((0, "1.00"), when={"days": ["fri"], "from": "22:00", "to": "06:00"}),
        time((0, "5.00"), when={"days": ["sat"], "from": "22:00", "to": "06:00"}),
        timezone="Europe/Vienna",
    )
    bill = price(t, (0, 0), (3600, 0), start=at(2026, 3, 7, 3))  # Saturday 03:00
    assert bill.net == D("1.0000")


def test_to_midnight_means_end_of_day_and_days_alone_the_whole_day() -> None:
    t = tariff(
        time((0, "2.00"), when={"from": "18:00", "to": "00:00"}),
        time((0, "1.00"), when={"days": ["sun"]}),
        timezone="Europe/Vienna",
    )
    assert price(t, (0, 0), (3600, 0), start=at(2026, 3, 2, 23)).net == D("2.0000")
    assert price(t, (0, 0), (3600, 0), start=at(2026, 3, 8, 10)).net == D("1.0000")  # Sunday
    # Monday 10:00: nothing matches, so the time costs nothing but is shown
    bill = price(t, (0, 0), (3600, 0), start=at(2026, 3, 2, 10))
    assert bill.net == D("0.0000")
    assert lines_of(bill, "time") == [(None, None, 3600, D("0.0000"), "unpriced")]


def test_first_matching_component_in_list_order_wins() -> None:
    t = tariff(
        time((0, "9.00"), when={"days": ["mon"], "from": "10:00", "to": "11:00"}),
        time((0, "1.00"), when={"from": "08:00", "to": "20:00"}),
        time((0, "0")),
        timezone="Europe/Vienna",
    )
    bill = price(t, (0, 0), (7200, 0), start=at(2026, 3, 2, 10))  # 10-11 at 9, 11-12 at 1
    assert bill.net == D("10.0000")
    bill = price(t, (0, 0), (7200, 0), start=at(2026, 3, 3, 10))  # Tuesday: all at 1
    assert bill.net == D("2.0000")


def test_public_holidays_of_the_tariffs_country() -> None:
    t = tariff(
        energy((0, "0.10"), when={"days": ["sat", "sun", "holiday"]}),
        energy((0, "0.30")),
        timezone="Europe/Vienna", country="AT",
    )
    # Tuesday 6 January 2026 (Epiphany) is a public holiday in Austria
    assert price(t, (0, 0), (3600, 1000), start=at(2026, 1, 6, 10)).net == D("0.1000")
    assert price(t, (0, 0), (3600, 1000), start=at(2026, 1, 7, 10)).net == D("0.3000")


def test_holidays_default_to_the_sites_country_and_region() -> None:
    doc = {"id": "t", "currency": "EUR", "vat_percent": "19", "components": [
        {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.10"}],
         "when": {"days": ["holiday"]}},
        {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.30"}]}]}
    usage = session((0, 0), (3600, 1000), start=at(2026, 1, 6, 10))  # Epiphany
    bavaria = load_tariff(doc, site_timezone="Europe/Berlin", site_country="DE",
                          site_region="BY")
    berlin = load_tariff(doc, site_timezone="Europe/Berlin", site_country="DE",
                         site_region="BE")
    assert rate(bavaria, usage).net == D("0.1000")  # a holiday in Bavaria
    assert rate(berlin, usage).net == D("0.3000")  # not in Berlin
    own = load_tariff({**doc, "country": "DE", "region": "BY"}, site_timezone="Europe/Berlin",
                      site_country="AT", site_region="9")
    assert own.country == "DE" and own.region == "BY"
    assert rate(own, usage).net == D("0.1000")


def test_step_extra_is_priced_by_the_component_at_the_last_instant() -> None:
    t = tariff(
        time((0, "3.60"), when={"from": "06:00", "to": "22:00"}, step_s=3600),
        time((0, "36.00"), step_s=3600),
        timezone="Europe/Vienna",
    )
    # 21:50 -> 22:10: 10 min day (0.01/10s...), 10 min night, then 40 min step at night price
    bill = price(t, (0, 0), (1200, 0), start=at(2026, 3, 2, 21, 50))
    assert lines_of(bill, "time") == [(0, 0, 600, D("0.6000"), None),
                                     (1, 0, 600, D("6.0000"), None),
                                     (1, 0, 2400, D("24.0000"), "step")]


def test_session_ending_exactly_at_a_boundary_uses_the_next_component_for_steps() -> None:
    t = tariff(
        time((0, "3.60"), when={"from": "06:00", "to": "22:00"}, step_s=3600),
        time((0, "36.00"), step_s=3600),
        timezone="Europe/Vienna",
    )
    bill = price(t, (0, 0), (600, 0), start=at(2026, 3, 2, 21, 50))
    assert lines_of(bill, "time") == [(0, 0, 600, D("0.6000"), None),
                                     (1, 0, 3000, D("30.0000"), "step")]


def test_flat_fee_from_the_first_flat_component_matching_at_the_start() -> None:
    t = tariff(
        flat("1.00", when={"from": "22:00", "to": "06:00"}),
        flat("2.00"),
        timezone="Europe/Vienna",
    )
    assert price(t, (0, 0), (7200, 0), start=at(2026, 3, 2, 21)).net == D("2.0000")
    assert price(t, (0, 0), (7200, 0), start=at(2026, 3, 2, 23)).net == D("1.0000")


def test_dst_spring_forward_durations_are_real_elapsed_seconds() -> None:
    t = tariff(time((0, "1.00")), timezone="Europe/Vienna")
    # 29 March 2026: 01:00 -> 04:00 local is two real hours
    usage = Usage.of([Sample(at(2026, 3, 29, 1), 0), Sample(at(2026, 3, 29, 4), 0)])
    assert usage.times[1] - usage.times[0] == 2 * 3600 * 10**6
    assert rate(t, usage).net == D("2.0000")


def test_dst_gap_local_time_means_the_first_instant_after_the_gap() -> None:
    t = tariff(
        time((0, "1.00"), when={"from": "02:30", "to": "05:00"}),
        time((0, "0")),
        timezone="Europe/Vienna",
    )
    # on 29 March 2026 02:30 does not exist; the window opens at 03:00 CEST (01:00 UTC)
    start = datetime.fromisoformat("2026-03-29T00:00:00+00:00")  # 01:00 CET
    bill = price(t, (0, 0), (4 * 3600, 0), start=start)  # until 06:00 CEST
    assert bill.net == D("2.0000")  # 03:00 -> 05:00 CEST


def test_dst_repeated_local_time_means_its_first_occurrence() -> None:
    t = tariff(
        time((0, "1.00"), when={"from": "02:30", "to": "03:30"}),
        time((0, "0")),
        timezone="Europe/Vienna",
    )
    # 25 October 2026: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET);
    # the window runs from the first 02:30 to 03:30 CET (02:30 UTC): two real hours.
    start = datetime.fromisoformat("2026-10-25T00:00:00+00:00")
    assert price(t, (0, 0), (4 * 3600, 0), start=start).net == D("2.0000")


def test_site_timezone_is_the_default() -> None:
    doc = {"id": "t", "currency": "EUR", "vat_percent": "20", "components": [
        {"dimension": "time", "tiers": [{"from_s": 0, "price": "1"}],
         "when": {"from": "10:00", "to": "11:00"}}]}
    usage = session((0, 0), (7200, 0), start=datetime.fromisoformat("2026-03-02T09:00:00+00:00"))
    # 09:00-11:00 UTC is 10:00-12:00 in Vienna and 04:00-06:00 in New York
    assert rate(load_tariff(doc, site_timezone="Europe/Vienna"), usage).net == D("1.0000")
    assert rate(load_tariff(doc, site_timezone="America/New_York"), usage).net == D("0.0000")
    own = load_tariff({**doc, "timezone": "UTC"}, site_timezone="Europe/Vienna")
    assert rate(own, usage).net == D("1.0000")


def test_contract_consequence_step_priced_at_the_last_instant_can_lower_a_bill() -> None:
    # Documented in pricing/README.md: the step extra follows the component at the last
    # instant, so leaving an expensive window with a large step can make a session cheaper.
    t = tariff(
        time((0, "36.00"), when={"from": "06:00", "to": "22:00"}, step_s=3600),
        time((0, "3.60"), step_s=3600),
        timezone="Europe/Vienna",
    )
    before = price(t, (0, 0), (599, 0), start=at(2026, 3, 2, 21, 50))
    after = price(t, (0, 0), (601, 0), start=at(2026, 3, 2, 21, 50))
    assert before.net == D("36.0000")  # 599 s day + 3001 s day-priced step
    assert after.net == D("9.0000")  # 600 s day + 1 s night + 2999 s night-priced step
