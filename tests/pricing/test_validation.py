"""Invalid tariffs and usage raise one TariffError listing every problem with its path."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pricing import Sample, TariffError, Usage, load_tariff, load_usage

BASE: dict[str, Any] = {"id": "t", "currency": "EUR", "vat_percent": "20"}


def problems(doc: dict[str, Any], **site: Any) -> tuple[str, ...]:
    with pytest.raises(TariffError) as caught:
        load_tariff(doc, **site)
    return caught.value.problems


def with_components(*components: Any, **top: Any) -> dict[str, Any]:
    return {**BASE, "components": list(components), **top}


ENERGY = {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.25"}]}


def test_required_top_level_fields() -> None:
    assert set(problems({})) == {"id: required", "currency: required", "vat_percent: required",
                                 "components: required"}
    assert problems({**BASE, "components": []}) == ("components: must be a non-empty list",)


def test_unknown_keys_anywhere() -> None:
    found = problems(with_components(
        {**ENERGY, "colour": "red", "tiers": [{"from_wh": 0, "price": "1", "x": 1}]},
        extra=True,
    ))
    assert "extra: unknown key" in found
    assert "components[0].colour: unknown key" in found
    assert any(p.startswith("components[0].tiers[0].x: unknown key") for p in found)


def test_wrong_unit_keys_are_named() -> None:
    found = problems(with_components({**ENERGY, "step_s": 60}))
    assert found == ("components[0].step_s: unknown key (a energy component uses step_wh)",)
    found = problems(with_components(
        {"dimension": "time", "tiers": [{"from_wh": 0, "price": "1"}]}))
    assert "components[0].tiers[0].from_wh: unknown key (a time tier takes from_s and price)" \
        in found
    assert "components[0].tiers[0].from_s: required" in found


def test_every_problem_is_listed_with_its_path() -> None:
    doc = with_components(
        {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "-1"}]},
        {"dimension": "time", "tiers": [{"from_s": 0, "price": "abc"}]},
        {"dimension": "flat"},
        {"dimension": "heat", "price": "1"},
        currency="euro", vat_percent=None,
    )
    found = problems(doc)
    assert found == (
        "currency: must be an ISO 4217 code such as EUR, got 'euro'",
        "vat_percent: must be a decimal number as a string or number, not null",
        "components[0].tiers[0].price: must not be negative, got -1",
        "components[1].tiers[0].price: not a decimal number: 'abc'",
        "components[2].price: required",
        "components[3].dimension: must be one of energy, time, idle, flat, day, demand; "
        "got 'heat'",
    )
    with pytest.raises(TariffError) as caught:
        load_tariff(doc)
    assert str(caught.value) == "\n".join(found)
    assert isinstance(caught.value, ValueError)


def test_tiers_must_start_at_zero_and_increase() -> None:
    found = problems(with_components({"dimension": "energy", "tiers": [
        {"from_wh": 100, "price": "1"}, {"from_wh": 50, "price": "1"},
        {"from_wh": 50, "price": "1"}]}))
    assert found == (
        "components[0].tiers[0].from_wh: the first tier must start at 0, not 100",
        "components[0].tiers[1].from_wh: tiers out of order: 50 is not above 100",
        "components[0].tiers[2].from_wh: tiers out of order: 50 is not above 50",
    )
    assert problems(with_components({"dimension": "energy", "tiers": []})) == (
        "components[0].tiers: must be a non-empty list of {from_wh, price}",)
    assert problems(with_components({"dimension": "energy"})) == (
        "components[0].tiers: required (or intervals)",)


def test_quantities_must_be_whole_non_negative_numbers() -> None:
    found = problems(with_components({"dimension": "energy", "tiers": [
        {"from_wh": 0, "price": "1"}, {"from_wh": -5, "price": "1"},
        {"from_wh": 1.5, "price": "1"}], "step_wh": 0, "grace_wh": -1}))
    assert "components[0].tiers[1].from_wh: must be >= 0, got -5" in found
    assert "components[0].tiers[2].from_wh: must be a whole number, not float 1.5" in found
    assert "components[0].step_wh: must be >= 1, got 0" in found
    assert "components[0].grace_wh: must be >= 0, got -1" in found


def test_dimension_rules_must_agree_and_grace_excludes_free() -> None:
    found = problems(with_components(
        {**ENERGY, "step_wh": 100, "when": {"from": "06:00", "to": "22:00"}},
        {**ENERGY, "step_wh": 50},
        {"dimension": "idle", "tiers": [{"from_s": 0, "price": "1"}], "grace_s": 60,
         "free_s": 60},
        timezone="UTC",
    ))
    assert found == (
        "components[1].step_wh: 50 disagrees with components[0].step_wh = 100; step, grace "
        "and free belong to the dimension, so every energy component must state the same value",
        "components[2].grace_s: a dimension has either a grace or a free allowance, not both "
        "(free_s is also set)",
    )
    # one stating a value and another leaving the default also disagree
    found = problems(with_components({**ENERGY, "grace_wh": 200, "when": {"days": ["mon"]}},
                                     ENERGY, timezone="UTC"))
    assert found[0].startswith("components[1].grace_wh: 0 disagrees with components[0]")


def test_min_price_not_above_max_price() -> None:
    assert problems(with_components(ENERGY, min_price="5", max_price="1")) == (
        "min_price: 5 is above max_price 1",)


def test_windows() -> None:
    found = problems(with_components(
        {**ENERGY, "when": {"days": ["mon", "funday"], "from": 1320, "to": "25:00"}},
        {**ENERGY, "when": {"from": "06:00", "to": "06:00"}},
        {**ENERGY, "when": {}},
        {**ENERGY, "when": {"hours": "all"}},
        timezone="UTC",
    ))
    assert found == (
        "components[0].when.days[1]: must be one of mon, tue, wed, thu, fri, sat, sun, holiday; "
        "got 'funday'",
        'components[0].when.from: must be a quoted "HH:MM" string, got the number 1320 (a YAML '
        "1.1 reader turns an unquoted 22:00 into a number)",
        'components[0].when.to: must be a time of day "HH:MM" (00:00 to 23:59), got \'25:00\'',
        "components[1].when.to: must differ from `from` (use days alone for a whole day)",
        "components[2].when: is empty; omit `when` for a component that always applies",
        "components[3].when.hours: unknown key",
    )


def test_timezone_is_required_for_windows_unless_the_site_gives_one() -> None:
    doc = with_components({**ENERGY, "when": {"days": ["mon"]}})
    assert problems(doc) == (
        "timezone: required because a component has `when` and no site time zone is given",)
    assert load_tariff(doc, site_timezone="Europe/Vienna").timezone == "Europe/Vienna"
    assert problems({**doc, "timezone": "Mars/Olympus"}) == (
        "timezone: unknown IANA time zone 'Mars/Olympus'",)


def test_holiday_needs_a_country_and_a_known_one() -> None:
    doc = with_components({**ENERGY, "when": {"days": ["holiday"]}}, timezone="UTC")
    assert problems(doc) == ("country: required because a window uses `holiday` and no site "
                             "country is given",)
    assert problems({**doc, "country": "XX"}) == (
        "country: no public holidays known for country 'XX'",)
    assert problems({**doc, "country": "AT", "region": "99"}) == (
        "region: no public holidays known for 'AT' region '99'",)
    assert load_tariff(doc, site_country="AT").country == "AT"


def test_interval_tables() -> None:
    table = {"dimension": "time", "interval_s": 60, "intervals": [[2, "0"], [3, "0.1251"]]}
    found = problems(with_components(
        {**table, "when": {"days": ["mon"]}, "step_s": 60},
        {"dimension": "time", "tiers": [{"from_s": 0, "price": "1"}]},
        {"dimension": "idle", "interval_s": 60, "intervals": [[1, "1"]]},
        {"dimension": "energy", "intervals": [[3, "1"], [2, "1"], [0, "x"]]},
        timezone="UTC",
    ))
    assert found == (
        "components[0].when: unknown key (an interval table takes interval_s and intervals "
        "only)",
        "components[0].step_s: unknown key (an interval table takes interval_s and intervals "
        "only)",
        "components[1]: an interval table (components[0]) must be the only time component",
        "components[2].intervals: an interval table is for time and energy only",
        "components[3].interval_wh: required with intervals",
        "components[3].intervals[1][0]: rows out of order: 2 is not above 3",
        "components[3].intervals[2][0]: must be >= 1, got 0",
        "components[3].intervals[2][1]: not a decimal number: 'x'",
    )


def test_flat_takes_a_price_not_tiers() -> None:
    found = problems(with_components({"dimension": "flat", "tiers": [], "price": "1"}))
    assert found == ("components[0].tiers: unknown key (a flat component takes price and when)",)


def test_prices_reject_floats_infinities_and_booleans_cleanly() -> None:
    found = problems(with_components(
        {"dimension": "flat", "price": True},
        {"dimension": "flat", "price": Decimal("Infinity")},
        {"dimension": "flat", "price": "NaN"},
    ))
    assert found == (
        "components[0].price: must be a decimal number as a string or number, not a boolean",
        "components[1].price: must be a finite number, not Decimal('Infinity')",
        "components[2].price: must be a finite number, not 'NaN'",
    )


# ---- usage documents -------------------------------------------------------------------------


def usage_problems(doc: Any) -> tuple[str, ...]:
    with pytest.raises(TariffError) as caught:
        load_usage(doc)
    return caught.value.problems


def test_usage_samples_required_and_known_keys() -> None:
    assert usage_problems({}) == ("samples: required",)
    assert usage_problems({"samples": []}) == ("samples: must be a non-empty list",)
    assert usage_problems({"samples": [{"at": "2026-03-02T10:00:00+01:00", "energy_wh": 0,
                                        "power": 3}], "x": 1}) == (
        "x: unknown key", "samples[0].power: unknown key")


def test_usage_errors_name_the_sample_and_field() -> None:
    doc = {"samples": [
        {"at": "2026-03-02T10:00:00+01:00", "energy_wh": 100},
        {"at": "2026-03-02T10:00:00+01:00", "energy_wh": 200},  # not after
        {"at": "2026-03-02T10:05:00+01:00", "energy_wh": 50},  # decreases
        {"at": "2026-03-02T10:06:00", "energy_wh": 60},  # no offset
        {"at": "yesterday", "energy_wh": -1},
        {"energy_wh": 1.5, "charging": "no"},
    ]}
    assert usage_problems(doc) == (
        "samples[1].at: 2026-03-02T10:00:00+01:00 is not after samples[0].at "
        "2026-03-02T10:00:00+01:00 (timestamps must strictly increase)",
        "samples[2].energy_wh: decreases from 100 to 50 (the register never decreases)",
        "samples[3].at: timestamp without UTC offset: 2026-03-02T10:06:00",
        "samples[4].at: not an ISO 8601 timestamp: 'yesterday'",
        "samples[4].energy_wh: must be >= 0, got -1",
        "samples[5].at: required",
        "samples[5].energy_wh: must be a whole number, not float 1.5",
        "samples[5].charging: must be true or false, not 'no'",
    )


def test_usage_objects_validate_too() -> None:
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    with pytest.raises(TariffError) as caught:
        Usage.of([Sample(at, 5), Sample(at, 4)])
    assert caught.value.problems[0].startswith("samples[1].at: ")
    assert caught.value.problems[1].startswith("samples[1].energy_wh: decreases")
    with pytest.raises(TariffError, match="samples: must hold at least one sample"):
        Usage.of([])
    with pytest.raises(TariffError, match=r"samples\[0\].at: must be a datetime with a UTC"):
        Usage.of([Sample(datetime(2026, 1, 1), 0)])


def test_usage_accepts_z_suffix_and_datetime_values() -> None:
    usage = load_usage({"samples": [
        {"at": "2026-03-02T10:00:00Z", "energy_wh": 0},
        {"at": datetime(2026, 3, 2, 11, tzinfo=UTC), "energy_wh": 5, "charging": False}]})
    assert usage.times[1] - usage.times[0] == 3600 * 10**6
    assert usage.idle == (0, 3600 * 10**6)


def test_sample_order_is_by_instant_not_wall_clock() -> None:
    from tests.pricing.documents import VIENNA

    # 02:24 does not exist on 29 March 2026 in Vienna (it reads as 03:24 CEST), so a 03:00
    # reading after it is earlier in real time although later on the wall clock.
    with pytest.raises(TariffError, match=r"samples\[1\].at: .* is not after samples\[0\].at"):
        Usage.of([Sample(datetime(2026, 3, 29, 2, 24, tzinfo=VIENNA), 0),
                  Sample(datetime(2026, 3, 29, 3, 0, tzinfo=VIENNA), 0)])
