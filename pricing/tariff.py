"""`load_tariff`: a tariff document (already parsed from YAML or JSON) validated into a `Tariff`.

Every problem is collected with its path before anything is raised, so one `TariffError` lists
them all. The keys are those of the contract (`shared/contracts/tariff.md`) plus the extensions
documented in `pricing/README.md` (`day` and `demand` dimensions, `debt_recovery`, component
`name`, `country`, `region`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_data

from pricing.errors import Problems
from pricing.model import Tariff
from pricing.parts import (
    DAY_NAMES,
    METERED,
    Component,
    DayComponent,
    DebtRecovery,
    DemandComponent,
    Dimension,
    DimensionRules,
    FlatComponent,
    IntervalTable,
    Tier,
    TieredComponent,
    Window,
)
from pricing.plan import compile_plan
from pricing.timeofuse import HolidayCalendar

_TOP_KEYS = {
    "id", "name", "currency", "vat_percent", "timezone", "country", "region",
    "min_price", "max_price", "components", "debt_recovery",
}
_SUFFIX = {"energy": "wh", "time": "s", "idle": "s"}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DAY_INDEX = {name: index for index, name in enumerate(DAY_NAMES)}


def decimal_value(value: object, path: str, problems: Problems, *, allow_none: bool = False
                  ) -> Decimal | None:
    """A non-negative exact decimal from a string, int or Decimal.

    A float is read through its shortest text form (what `repr` prints, which is what the
    document said for any price a person writes); the CLI's own readers never make floats.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        problems.add(path, f"must be a decimal number as a string or number, not {_kind(value)}")
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        problems.add(path, f"not a decimal number: {value!r}")
        return None
    if not number.is_finite():
        problems.add(path, f"must be a finite number, not {value!r}")
        return None
    if number < 0:
        problems.add(path, f"must not be negative, got {value}")
        return None
    return number + 0  # normalises -0


def whole_number(value: object, path: str, problems: Problems, *, minimum: int = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be a whole number, not {_kind(value)}")
        return None
    if value < minimum:
        problems.add(path, f"must be >= {minimum}, got {value}")
        return None
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _text(value: object, path: str, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be a non-empty string, not {_kind(value)}")
        return None
    return value


def _unknown_keys(doc: Mapping[str, Any], allowed: set[str], path: str, problems: Problems,
                  hint: str = "") -> None:
    for key in doc:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.add(where, f"unknown key{hint}")


def _clock(value: object, path: str, problems: Problems, *, end: bool) -> int | None:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        problems.add(path, f'must be a quoted "HH:MM" string, got the number {value} '
                           '(a YAML 1.1 reader turns an unquoted 22:00 into a number)')
        return None
    if not isinstance(value, str):
        problems.add(path, f'must be a quoted "HH:MM" string, not {_kind(value)}')
        return None
    if end and value == "24:00":
        return 1440
    match = _CLOCK.match(value)
    if match is None:
        problems.add(path, f'must be a time of day "HH:MM" (00:00 to 23:59), got {value!r}')
        return None
    minute = int(match.group(1)) * 60 + int(match.group(2))
    return 1440 if end and minute == 0 else minute


def _window(value: object, path: str, problems: Problems, *, days_only: bool) -> Window | None:
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a mapping with days, from, to; not {_kind(value)}")
        return None
    allowed = {"days"} if days_only else {"days", "from", "to"}
    _unknown_keys(value, allowed, path, problems,
                  " (a per-day component's window takes only days)" if days_only else "")
    if not value:
        problems.add(path, "is empty; omit `when` for a component that always applies")
        return None
    ok = True
    weekdays: set[int] = set(range(7))
    holiday = False
    names: list[str] = []
    if "days" in value:
        days = value["days"]
        if not isinstance(days, list) or not days:
            problems.add(f"{path}.days", "must be a non-empty list of mon..sun or holiday")
            ok = False
        else:
            weekdays = set()
            for position, day in enumerate(days):
                if day == "holiday":
                    holiday = True
                elif isinstance(day, str) and day in _DAY_INDEX:
                    weekdays.add(_DAY_INDEX[day])
                else:
                    problems.add(f"{path}.days[{position}]",
                                 f"must be one of {', '.join(DAY_NAMES)}, holiday; got {day!r}")
                    ok = False
                    continue
                names.append(day)
    opens, closes = 0, 1440
    if "from" in value:
        parsed = _clock(value["from"], f"{path}.from", problems, end=False)
        ok = ok and parsed is not None
        opens = parsed if parsed is not None else 0
    if "to" in value:
        parsed = _clock(value["to"], f"{path}.to", problems, end=True)
        ok = ok and parsed is not None
        closes = parsed if parsed is not None else 1440
    if ok and "from" in value and "to" in value and opens % 1440 == closes % 1440:
        problems.add(f"{path}.to", "must differ from `from` (use days alone for a whole day)")
        ok = False
    if not ok:
        return None
    day_text = ",".join(names) if "days" in value else "daily"
    hours = ""
    if "from" in value or "to" in value:
        hours = f" {opens // 60:02d}:{opens % 60:02d}-{closes // 60 % 24:02d}:{closes % 60:02d}"
    return Window(frozenset(weekdays), holiday, opens, closes, day_text + hours)


def _tiers(value: object, dimension: Dimension, path: str, problems: Problems
           ) -> tuple[Tier, ...] | None:
    key = f"from_{_SUFFIX[dimension]}"
    if not isinstance(value, list) or not value:
        problems.add(path, f"must be a non-empty list of {{{key}, price}}")
        return None
    tiers: list[Tier] = []
    ok = True
    previous: int | None = None
    for position, raw in enumerate(value):
        where = f"{path}[{position}]"
        if not isinstance(raw, Mapping):
            problems.add(where, f"must be a mapping {{{key}, price}}, not {_kind(raw)}")
            ok = False
            continue
        _unknown_keys(raw, {key, "price"}, where, problems,
                      f" (a {dimension} tier takes {key} and price)")
        start: int | None = None
        if key not in raw:
            problems.add(f"{where}.{key}", "required")
        else:
            start = whole_number(raw[key], f"{where}.{key}", problems)
        price: Decimal | None = None
        if "price" not in raw:
            problems.add(f"{where}.price", "required")
        else:
            price = decimal_value(raw["price"], f"{where}.price", problems)
        if start is not None:
            if position == 0 and start != 0:
                problems.add(f"{where}.{key}", f"the first tier must start at 0, not {start}")
            elif previous is not None and start <= previous:
                problems.add(f"{where}.{key}",
                             f"tiers out of order: {start} is not above {previous}")
            previous = start
        if start is None or price is None:
            ok = False
        else:
            tiers.append(Tier(start, price))
    return tuple(tiers) if ok and tiers else None


def _intervals(value: object, path: str, problems: Problems
               ) -> tuple[tuple[int, Decimal], ...] | None:
    if not isinstance(value, list) or not value:
        problems.add(path, "must be a non-empty list of [n, value] rows")
        return None
    rows: list[tuple[int, Decimal]] = []
    ok = True
    previous = 0
    for position, raw in enumerate(value):
        where = f"{path}[{position}]"
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            problems.add(where, f"must be a pair [n, value], not {_kind(raw)}")
            ok = False
            continue
        number = whole_number(raw[0], f"{where}[0]", problems, minimum=1)
        price = decimal_value(raw[1], f"{where}[1]", problems)
        if number is not None and number <= previous:
            problems.add(f"{where}[0]", f"rows out of order: {number} is not above {previous}")
            number = None
        if number is None or price is None:
            ok = False
            continue
        previous = number
        rows.append((number, price))
    return tuple(rows) if ok else None


class _ComponentReader:
    """Reads `components`, remembering each metered dimension's step, grace and free."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.rules: dict[Dimension, tuple[DimensionRules, dict[str, int], int]] = {}
        self.tables: dict[Dimension, int] = {}
        self.seen: dict[Dimension, int] = {}
        self.uses_windows = False
        self.uses_holidays = False
        self.uses_days = False

    def read(self, index: int, raw: object) -> Component | None:
        path = f"components[{index}]"
        problems = self.problems
        if not isinstance(raw, Mapping):
            problems.add(path, f"must be a mapping, not {_kind(raw)}")
            return None
        dimension = raw.get("dimension")
        if "dimension" not in raw:
            problems.add(f"{path}.dimension", "required")
            return None
        if dimension not in ("energy", "time", "idle", "flat", "day", "demand"):
            problems.add(f"{path}.dimension",
                         f"must be one of energy, time, idle, flat, day, demand; got {dimension!r}")
            return None
        dimension = cast(Dimension, dimension)
        name = None
        if "name" in raw:
            name = _text(raw["name"], f"{path}.name", problems)
        first_of_dimension = self.seen.setdefault(dimension, index)
        if dimension in METERED:
            return self._metered(index, dimension, raw, path, name, first_of_dimension)
        if dimension == "demand":
            _unknown_keys(raw, {"dimension", "name", "price", "interval_s"}, path, problems)
            if first_of_dimension != index:
                problems.add(f"{path}.dimension", "only one demand component allowed "
                                                  f"(see components[{first_of_dimension}])")
            price = self._price(raw, path)
            interval = 900
            if "interval_s" in raw:
                got = whole_number(raw["interval_s"], f"{path}.interval_s", problems, minimum=60)
                if got is not None and 86400 % got:
                    problems.add(f"{path}.interval_s", f"must divide a day evenly, got {got}")
                    got = None
                interval = got if got is not None else interval
            if price is None:
                return None
            return DemandComponent(index, price, interval, name)
        days_only = dimension == "day"
        _unknown_keys(raw, {"dimension", "name", "price", "when"}, path, problems,
                      f" (a {dimension} component takes price and when)")
        price = self._price(raw, path)
        when = self._when(raw, path, days_only=days_only)
        if dimension == "day":
            self.uses_days = True
        if price is None or ("when" in raw and when is None):
            return None
        if dimension == "flat":
            return FlatComponent(index, price, when, name)
        return DayComponent(index, price, when, name)

    def _price(self, raw: Mapping[str, Any], path: str) -> Decimal | None:
        if "price" not in raw:
            self.problems.add(f"{path}.price", "required")
            return None
        return decimal_value(raw["price"], f"{path}.price", self.problems)

    def _when(self, raw: Mapping[str, Any], path: str, *, days_only: bool) -> Window | None:
        if "when" not in raw:
            return None
        self.uses_windows = True
        when = _window(raw["when"], f"{path}.when", self.problems, days_only=days_only)
        if when is not None and when.holiday:
            self.uses_holidays = True
        return when

    def _metered(self, index: int, dimension: Dimension, raw: Mapping[str, Any], path: str,
                 name: str | None, first: int) -> Component | None:
        problems = self.problems
        suffix = _SUFFIX[dimension]
        if "intervals" in raw:
            return self._table(index, dimension, raw, path, name, first)
        if dimension in self.tables:
            problems.add(path, f"an interval table (components[{self.tables[dimension]}]) must "
                               f"be the only {dimension} component")
        allowed = {"dimension", "name", "tiers", "when",
                   f"step_{suffix}", f"grace_{suffix}", f"free_{suffix}"}
        other = "wh" if suffix == "s" else "s"
        for key in raw:
            if key not in allowed:
                if key.endswith(f"_{other}") and key.split("_")[0] in ("step", "grace", "free"):
                    problems.add(f"{path}.{key}", f"unknown key (a {dimension} component uses "
                                                  f"{key.split('_')[0]}_{suffix})")
                else:
                    problems.add(f"{path}.{key}", "unknown key")
        tiers = None
        if "tiers" not in raw:
            problems.add(f"{path}.tiers", "required (or intervals)")
        else:
            tiers = _tiers(raw["tiers"], dimension, f"{path}.tiers", problems)
        when = self._when(raw, path, days_only=False)
        values: dict[str, int] = {}
        defaults = {"step": 1, "grace": 0, "free": 0}
        for rule, default in defaults.items():
            key = f"{rule}_{suffix}"
            values[rule] = default
            if key in raw:
                got = whole_number(raw[key], f"{path}.{key}", problems,
                                   minimum=1 if rule == "step" else 0)
                values[rule] = got if got is not None else default
        if values["grace"] and values["free"]:
            problems.add(f"{path}.grace_{suffix}",
                         f"a dimension has either a grace or a free allowance, not both "
                         f"(free_{suffix} is also set)")
        rules = DimensionRules(values["step"], values["grace"], values["free"])
        earlier = self.rules.get(dimension)
        if earlier is None:
            self.rules[dimension] = (rules, values, index)
        elif earlier[0] != rules:
            for rule in defaults:
                if earlier[1][rule] != values[rule]:
                    problems.add(
                        f"{path}.{rule}_{suffix}",
                        f"{values[rule]} disagrees with components[{earlier[2]}].{rule}_{suffix}"
                        f" = {earlier[1][rule]}; step, grace and free belong to the dimension, "
                        f"so every {dimension} component must state the same value",
                    )
        if tiers is None or ("when" in raw and when is None):
            return None
        return TieredComponent(index, dimension, tiers, when, name)

    def _table(self, index: int, dimension: Dimension, raw: Mapping[str, Any], path: str,
               name: str | None, first: int) -> Component | None:
        problems = self.problems
        if dimension == "idle":
            problems.add(f"{path}.intervals", "an interval table is for time and energy only")
            return None
        suffix = _SUFFIX[dimension]
        key = f"interval_{suffix}"
        for extra in raw:
            if extra not in {"dimension", "name", "intervals", key}:
                problems.add(f"{path}.{extra}",
                             f"unknown key (an interval table takes {key} and intervals only)")
        if first != index or dimension in self.rules:
            problems.add(path, f"an interval table must be the only {dimension} component")
        self.tables[dimension] = index
        interval = None
        if key not in raw:
            problems.add(f"{path}.{key}", "required with intervals")
        else:
            interval = whole_number(raw[key], f"{path}.{key}", problems, minimum=1)
        rows = _intervals(raw["intervals"], f"{path}.intervals", problems)
        if interval is None or rows is None:
            return None
        return IntervalTable(index, dimension, interval, rows, name)


def load_tariff(
    doc: Mapping[str, Any],
    *,
    site_timezone: str | None = None,
    site_country: str | None = None,
    site_region: str | None = None,
) -> Tariff:
    """Validate a tariff document; raise `TariffError` listing every problem found."""
    problems = Problems()
    if not isinstance(doc, Mapping):
        problems.add("", f"a tariff must be a mapping, not {_kind(doc)}")
        problems.raise_if_any()
    _unknown_keys(doc, _TOP_KEYS, "", problems)
    tariff_id = name = currency = None
    if "id" not in doc:
        problems.add("id", "required")
    else:
        tariff_id = _text(doc["id"], "id", problems)
    if "name" in doc and doc["name"] is not None:
        name = _text(doc["name"], "name", problems)
    if "currency" not in doc:
        problems.add("currency", "required")
    elif not isinstance(doc["currency"], str) or not _CURRENCY.match(doc["currency"]):
        problems.add("currency", f"must be an ISO 4217 code such as EUR, got {doc['currency']!r}")
    else:
        currency = doc["currency"]
    vat: Decimal | None = None
    if "vat_percent" not in doc:
        problems.add("vat_percent", "required")
    else:
        vat = decimal_value(doc["vat_percent"], "vat_percent", problems)
        if vat is not None and vat > 100:
            problems.add("vat_percent", f"must be at most 100, got {vat}")
            vat = None
    minimum = decimal_value(doc.get("min_price"), "min_price", problems, allow_none=True)
    maximum = decimal_value(doc.get("max_price"), "max_price", problems, allow_none=True)
    if minimum is not None and maximum is not None and minimum > maximum:
        problems.add("min_price", f"{minimum} is above max_price {maximum}")

    reader = _ComponentReader(problems)
    components: list[Component] = []
    raw_components = doc.get("components")
    if "components" not in doc:
        problems.add("components", "required")
    elif not isinstance(raw_components, list) or not raw_components:
        problems.add("components", "must be a non-empty list")
    else:
        for index, raw in enumerate(raw_components):
            component = reader.read(index, raw)
            if component is not None:
                components.append(component)

    recovery = _recovery(doc.get("debt_recovery"), problems) if "debt_recovery" in doc else None

    zone_name = doc.get("timezone", None)
    zone: ZoneInfo | None = None
    zone_path = "timezone"
    if zone_name is None:
        zone_name, zone_path = site_timezone, "site timezone"
    if zone_name is not None:
        try:
            if not isinstance(zone_name, str):
                raise ValueError
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            problems.add(zone_path, f"unknown IANA time zone {zone_name!r}")
    needs_zone = reader.uses_windows or reader.uses_days or (
        recovery is not None and recovery.per_day > 0
    )
    if needs_zone and zone_name is None:
        why = "a component has `when`" if reader.uses_windows else "days are counted"
        problems.add("timezone", f"required because {why} and no site time zone is given")

    country = doc.get("country", site_country)
    region = doc.get("region", site_region if "country" not in doc else None)
    calendar: HolidayCalendar | None = None
    for key, value in (("country", country), ("region", region)):
        if value is not None and not isinstance(value, str):
            problems.add(key, f"must be a string, not {_kind(value)}")
    if isinstance(country, str):
        try:
            calendar = cast(HolidayCalendar, holiday_data.country_holidays(
                country, subdiv=region if isinstance(region, str) else None
            ))
        except NotImplementedError:
            if region is None:
                problems.add("country", f"no public holidays known for country {country!r}")
            else:
                problems.add("region", f"no public holidays known for {country!r} region "
                                       f"{region!r}")
    elif reader.uses_holidays:
        problems.add("country", "required because a window uses `holiday` and no site country "
                                "is given")
    problems.raise_if_any()

    assert tariff_id is not None and currency is not None and vat is not None
    rules = {dimension: entry[0] for dimension, entry in reader.rules.items()}
    plan = compile_plan(tuple(components), rules, zone, calendar, vat, minimum, maximum, recovery)
    return Tariff(
        id=tariff_id,
        name=name,
        currency=currency,
        vat_percent=vat,
        timezone=zone_name if isinstance(zone_name, str) else None,
        country=country if isinstance(country, str) else None,
        region=region if isinstance(region, str) else None,
        min_price=minimum,
        max_price=maximum,
        components=tuple(components),
        rules=tuple(sorted(rules.items())),
        debt_recovery=recovery,
        plan=plan,
    )


def _recovery(value: object, problems: Problems) -> DebtRecovery | None:
    if not isinstance(value, Mapping):
        problems.add("debt_recovery", f"must be a mapping with per_kwh and/or per_day, not "
                                      f"{_kind(value)}")
        return None
    _unknown_keys(value, {"per_kwh", "per_day"}, "debt_recovery", problems)
    if not value:
        problems.add("debt_recovery", "must set per_kwh and/or per_day")
    per_kwh = decimal_value(value.get("per_kwh", 0), "debt_recovery.per_kwh", problems)
    per_day = decimal_value(value.get("per_day", 0), "debt_recovery.per_day", problems)
    if per_kwh is None or per_day is None:
        return None
    return DebtRecovery(per_kwh, per_day)


def parse_instant(value: object, path: str, problems: Problems) -> datetime | None:
    """An aware timestamp from ISO 8601 text (or an aware datetime a YAML reader made)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            problems.add(path, f"not an ISO 8601 timestamp: {value!r}")
            return None
    elif isinstance(value, datetime):
        moment = value
    else:
        problems.add(path, f"must be an ISO 8601 timestamp with offset, not {_kind(value)}")
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        problems.add(path, f"timestamp without UTC offset: {value!s}")
        return None
    return moment
