"""Credit rules (seed 001: Kreditmöglichkeiten, Tilgung, Betriebsarten) as data, and one pure
decision over them.

`decide(policy, state, at, calendar)` answers for an account at an instant: may a usage start (or
metered supply be restored), must running use stop (or supply be cut), and why. It reads no clock
and no database; the instant and the site's calendar come in as arguments.

- Operating modes: `prepaid` (usage debited), `free` (usage recorded, not debited; the next
  top-up switches back to prepaid, as the seed's meters do when a credit card is inserted),
  `blocked` (nothing starts, everything stops).
- Emergency credit: a limit the resident activates; while active it counts as credit, and the next
  top-up repays it first (`wallet.service.top_up`).
- Friendly credit: a daily span of wall-clock time (e.g. 18:00-08:00, may wrap midnight),
  weekends, the public holidays of the site's country and region, up to 10 credit days a year,
  and one span of consecutive days. Inside them nothing is stopped or cut for lack of credit;
  starting still needs the start minimum, because a friendly window protects running use, it
  does not lend money for new use.
- Debt recovery (Tilgung): a daily rate, a surcharge per kWh, a percentage of each top-up with a
  weekly cap; applied by `wallet.service`, described here.

Money is available when `balance - held + credit allowed` is positive; running use must stop when
that would fall below zero, and may start when it reaches the start minimum.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from column_types import MONEY_EXPONENT
from wallet.errors import InvalidInput, InvalidInputs

MAX_CREDIT_DAYS_PER_YEAR = 10
ZERO = Decimal("0.00")


class Mode(StrEnum):
    PREPAID = "prepaid"
    FREE = "free"
    BLOCKED = "blocked"


class Reason(StrEnum):
    OK = "ok"
    FREE_MODE = "free_mode"
    BLOCKED = "blocked"
    BELOW_START_MINIMUM = "below_start_minimum"
    CREDIT_EXHAUSTED = "credit_exhausted"
    FRIENDLY_SPAN = "friendly_span"
    FRIENDLY_CREDIT_DAY = "friendly_credit_day"
    FRIENDLY_HOLIDAY = "friendly_holiday"
    FRIENDLY_WEEKEND = "friendly_weekend"
    FRIENDLY_DAILY = "friendly_daily"


@dataclass(frozen=True, slots=True)
class DailySpan:
    """Wall-clock span in the site's zone; `start > end` wraps midnight (18:00-08:00)."""

    start: time
    end: time

    def contains(self, wall: time) -> bool:
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


@dataclass(frozen=True, slots=True)
class DateSpan:
    """Consecutive local days, both ends included."""

    first: date
    last: date

    def contains(self, day: date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True, slots=True)
class FriendlyCredit:
    daily: DailySpan | None = None
    weekends: bool = False
    holidays: bool = False
    credit_days: frozenset[date] = frozenset()
    span: DateSpan | None = None


@dataclass(frozen=True, slots=True)
class DebtRecovery:
    daily_rate: Decimal = ZERO
    surcharge_per_kwh: Decimal = ZERO
    topup_percent: Decimal = ZERO
    # Most recovered from top-ups per ISO week (site time); None: no cap.
    weekly_cap: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    mode: Mode = Mode.PREPAID
    start_minimum: Decimal = Decimal("1.00")
    emergency_credit: Decimal = ZERO
    friendly: FriendlyCredit = field(default_factory=FriendlyCredit)
    debt_recovery: DebtRecovery = field(default_factory=DebtRecovery)
    # Low-balance alert thresholds, highest first.
    low_balance_thresholds: tuple[Decimal, ...] = ()

    def to_document(self) -> dict[str, Any]:
        friendly = self.friendly
        recovery = self.debt_recovery
        return {
            "mode": self.mode.value,
            "start_minimum": str(self.start_minimum),
            "emergency_credit": str(self.emergency_credit),
            "friendly": {
                "daily": (
                    {"from": friendly.daily.start.strftime("%H:%M"),
                     "to": friendly.daily.end.strftime("%H:%M")}
                    if friendly.daily else None
                ),
                "weekends": friendly.weekends,
                "holidays": friendly.holidays,
                "credit_days": sorted(day.isoformat() for day in friendly.credit_days),
                "span": (
                    {"from": friendly.span.first.isoformat(), "to": friendly.span.last.isoformat()}
                    if friendly.span else None
                ),
            },
            "debt_recovery": {
                "daily_rate": str(recovery.daily_rate),
                "surcharge_per_kwh": str(recovery.surcharge_per_kwh),
                "topup_percent": str(recovery.topup_percent),
                "weekly_cap": None if recovery.weekly_cap is None else str(recovery.weekly_cap),
            },
            "low_balance_thresholds": [str(value) for value in self.low_balance_thresholds],
        }

    @classmethod
    def from_document(cls, document: Any) -> CreditPolicy:
        """Parse a policy document; every problem is reported at once with its path."""
        return _PolicyParser().parse(document)


def policy_missing(document: Any) -> list[tuple[str, str]]:
    """For a replacement (PUT): every key of the whole document (as `to_document` writes it,
    nested blocks included) that `document` leaves out, as (path, "required") problems."""
    if not isinstance(document, Mapping):
        return []
    whole = CreditPolicy().to_document()
    missing: list[tuple[str, str]] = []
    for key, value in whole.items():
        if key not in document:
            missing.append((key, "required (a replacement names every field; PATCH changes "
                                 "only the fields sent)"))
        elif isinstance(value, dict) and isinstance(document[key], Mapping):
            missing += [(f"{key}.{inner}", "required") for inner in value
                        if inner not in document[key]]
    return missing


def whole_policy(document: Any) -> CreditPolicy:
    """A replacement document: every field present and valid, or `PolicyInvalid` with every
    missing field and every other problem."""
    missing = policy_missing(document)
    try:
        policy = CreditPolicy.from_document(document)
    except PolicyInvalid as error:
        raise PolicyInvalid(missing + error.errors) from None
    if missing:
        raise PolicyInvalid(missing)
    return policy


def merge_policy(current: CreditPolicy, patch: Any) -> Any:
    """The document `current` becomes with `patch` applied (PATCH): only the fields sent change;
    `friendly` and `debt_recovery` merge field by field; anything else in `patch` replaces. The
    result is a document still to be validated (`CreditPolicy.from_document`)."""
    merged = current.to_document()
    if not isinstance(patch, Mapping):
        return patch  # not an object: the parser reports it
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class PolicyInvalid(InvalidInputs):
    """A credit policy document with problems; `errors` lists every one with its path."""


class _PolicyParser:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def parse(self, document: Any) -> CreditPolicy:
        doc = self._mapping(document, "policy") or {}
        self._known(doc, "policy", {"mode", "start_minimum", "emergency_credit", "friendly",
                                    "debt_recovery", "low_balance_thresholds"})
        default = CreditPolicy()
        mode = default.mode
        if "mode" in doc:
            try:
                mode = Mode(doc["mode"])
            except ValueError:
                self.errors.append(("mode", f"must be one of {', '.join(m.value for m in Mode)}"))
        start_minimum = self._money(doc, "start_minimum", default.start_minimum, "")
        emergency = self._money(doc, "emergency_credit", default.emergency_credit, "")
        friendly = self._friendly(doc.get("friendly"))
        recovery = self._recovery(doc.get("debt_recovery"))
        thresholds: list[Decimal] = []
        raw_thresholds = doc.get("low_balance_thresholds", [])
        if not isinstance(raw_thresholds, list):
            self.errors.append(("low_balance_thresholds", "must be a list of amounts"))
        else:
            for index, raw in enumerate(raw_thresholds):
                value = self._amount(raw, f"low_balance_thresholds[{index}]")
                if value is not None:
                    thresholds.append(value)
            if len(set(thresholds)) != len(thresholds):
                self.errors.append(("low_balance_thresholds", "thresholds must be distinct"))
        if self.errors:
            raise PolicyInvalid(self.errors)
        return CreditPolicy(
            mode=mode, start_minimum=start_minimum, emergency_credit=emergency,
            friendly=friendly, debt_recovery=recovery,
            low_balance_thresholds=tuple(sorted(thresholds, reverse=True)),
        )

    def _mapping(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.errors.append((path, "must be an object"))
            return None
        return value

    def _known(self, doc: Mapping[str, Any], path: str, keys: set[str]) -> None:
        for key in doc:
            if key not in keys:
                name = key if path == "policy" else f"{path}.{key}"
                self.errors.append((name, "unknown key"))

    def _amount(self, raw: Any, path: str, *, allow_zero: bool = False) -> Decimal | None:
        if isinstance(raw, float | bool) or not isinstance(raw, str | int | Decimal):
            self.errors.append((path, "must be a decimal string such as \"5.00\""))
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            self.errors.append((path, f"not a decimal amount: {raw!r}"))
            return None
        if not value.is_finite() or value != value.quantize(MONEY_EXPONENT):
            self.errors.append((path, "must be an amount with at most 4 decimals"))
            return None
        if value < 0 or (value == 0 and not allow_zero):
            self.errors.append((path, "must be greater than zero" if not allow_zero
                                else "must not be negative"))
            return None
        return value

    def _money(self, doc: Mapping[str, Any], key: str, default: Decimal, prefix: str) -> Decimal:
        if key not in doc:
            return default
        value = self._amount(doc[key], prefix + key, allow_zero=True)
        return default if value is None else value

    def _friendly(self, raw: Any) -> FriendlyCredit:
        doc = self._mapping(raw, "friendly")
        if doc is None:
            return FriendlyCredit()
        self._known(doc, "friendly", {"daily", "weekends", "holidays", "credit_days", "span"})
        daily = None
        daily_doc = self._mapping(doc.get("daily"), "friendly.daily")
        if daily_doc is not None:
            self._known(daily_doc, "friendly.daily", {"from", "to"})
            start = self._time(daily_doc.get("from"), "friendly.daily.from")
            end = self._time(daily_doc.get("to"), "friendly.daily.to")
            if start is not None and end is not None:
                if start == end:
                    self.errors.append(("friendly.daily", "from and to must differ"))
                else:
                    daily = DailySpan(start, end)
        flags = {}
        for key in ("weekends", "holidays"):
            value = doc.get(key, False)
            if not isinstance(value, bool):
                self.errors.append((f"friendly.{key}", "must be true or false"))
                value = False
            flags[key] = value
        days: list[date] = []
        raw_days = doc.get("credit_days", [])
        if not isinstance(raw_days, list):
            self.errors.append(("friendly.credit_days", "must be a list of dates"))
        else:
            for index, value in enumerate(raw_days):
                day = self._date(value, f"friendly.credit_days[{index}]")
                if day is not None:
                    days.append(day)
            for year, count in sorted(Counter(day.year for day in set(days)).items()):
                if count > MAX_CREDIT_DAYS_PER_YEAR:
                    self.errors.append((
                        "friendly.credit_days",
                        f"{count} credit days in {year}; at most {MAX_CREDIT_DAYS_PER_YEAR} a year",
                    ))
        span = None
        span_doc = self._mapping(doc.get("span"), "friendly.span")
        if span_doc is not None:
            self._known(span_doc, "friendly.span", {"from", "to"})
            first = self._date(span_doc.get("from"), "friendly.span.from")
            last = self._date(span_doc.get("to"), "friendly.span.to")
            if first is not None and last is not None:
                if last < first:
                    self.errors.append(("friendly.span.to", "must not be before from"))
                else:
                    span = DateSpan(first, last)
        return FriendlyCredit(daily=daily, weekends=flags["weekends"], holidays=flags["holidays"],
                              credit_days=frozenset(days), span=span)

    def _recovery(self, raw: Any) -> DebtRecovery:
        doc = self._mapping(raw, "debt_recovery")
        if doc is None:
            return DebtRecovery()
        self._known(doc, "debt_recovery",
                    {"daily_rate", "surcharge_per_kwh", "topup_percent", "weekly_cap"})
        prefix = "debt_recovery."
        percent = self._money(doc, "topup_percent", ZERO, prefix)
        if percent > 100:
            self.errors.append(("debt_recovery.topup_percent", "must be at most 100"))
        cap = None
        if doc.get("weekly_cap") is not None:
            cap = self._amount(doc["weekly_cap"], "debt_recovery.weekly_cap", allow_zero=True)
        return DebtRecovery(
            daily_rate=self._money(doc, "daily_rate", ZERO, prefix),
            surcharge_per_kwh=self._money(doc, "surcharge_per_kwh", ZERO, prefix),
            topup_percent=percent,
            weekly_cap=cap,
        )

    def _time(self, raw: Any, path: str) -> time | None:
        if isinstance(raw, str):
            try:
                return time.fromisoformat(raw)
            except ValueError:
                pass
        self.errors.append((path, f"must be a time HH:MM, got {raw!r}"))
        return None

    def _date(self, raw: Any, path: str) -> date | None:
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw)
            except ValueError:
                pass
        self.errors.append((path, f"must be a date YYYY-MM-DD, got {raw!r}"))
        return None


@functools.lru_cache(maxsize=256)
def _holidays(country: str, region: str | None, year: int) -> Mapping[date, str]:
    try:
        found = holidays.country_holidays(country, subdiv=region, years=year)
    except NotImplementedError as exc:
        where = f"{country}-{region}" if region else country
        raise InvalidInput(f"no public holiday calendar for {where}", field="site.region") from exc
    return dict(found)


@dataclass(frozen=True, slots=True)
class SiteCalendar:
    """The site's zone and public holidays (country, optional subdivision such as BY or 9)."""

    timezone: str
    country: str
    region: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"unknown time zone {self.timezone!r}",
                               field="site.timezone") from exc

    def local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise InvalidInput("instant must be timezone-aware", field="at")
        return at.astimezone(self.zone)

    def holiday(self, day: date) -> str | None:
        return _holidays(self.country, self.region, day.year).get(day)


@dataclass(frozen=True, slots=True)
class WalletState:
    balance: Decimal
    held: Decimal = ZERO
    emergency_active: bool = False


@dataclass(frozen=True, slots=True)
class CreditDecision:
    may_start: bool
    # Running use must stop now; metered supply must be cut (or stay cut).
    must_stop: bool
    cut_supply: bool
    reason: Reason
    available: Decimal
    credit_allowed: Decimal
    # The friendly-credit window the instant is in, if any (and e.g. the holiday's name).
    friendly: Reason | None = None
    friendly_detail: str | None = None
    emergency_available: bool = False


def friendly_window(
    friendly: FriendlyCredit, calendar: SiteCalendar, at: datetime
) -> tuple[Reason, str | None] | None:
    """Which friendly-credit window (if any) the instant falls in, judged on the site's wall clock
    and calendar: a DST night has 23 or 25 hours, but a wall-clock span is what owners write."""
    local = calendar.local(at)
    day = local.date()
    if friendly.span is not None and friendly.span.contains(day):
        return Reason.FRIENDLY_SPAN, f"{friendly.span.first}..{friendly.span.last}"
    if day in friendly.credit_days:
        return Reason.FRIENDLY_CREDIT_DAY, day.isoformat()
    if friendly.holidays:
        name = calendar.holiday(day)
        if name is not None:
            return Reason.FRIENDLY_HOLIDAY, name
    if friendly.weekends and local.weekday() >= 5:
        return Reason.FRIENDLY_WEEKEND, None
    if friendly.daily is not None and friendly.daily.contains(local.time()):
        return Reason.FRIENDLY_DAILY, None
    return None


def decide(
    policy: CreditPolicy,
    state: WalletState,
    at: datetime,
    calendar: SiteCalendar,
    *,
    needed: Decimal = ZERO,
    supply_on: bool = True,
) -> CreditDecision:
    """The credit decision for an account at `at`.

    `needed` is what running use asks for beyond what is already held (a hold being raised);
    `supply_on` is whether metered supply is connected now: a cut supply is restored only when a
    start would be allowed (or a friendly window opens), so it does not flap around zero.
    """
    credit = policy.emergency_credit if state.emergency_active else ZERO
    available = state.balance - state.held + credit
    emergency_available = policy.emergency_credit > 0 and not state.emergency_active
    if policy.mode is Mode.BLOCKED:
        return CreditDecision(False, True, True, Reason.BLOCKED, available, credit,
                              emergency_available=emergency_available)
    if policy.mode is Mode.FREE:
        return CreditDecision(True, False, False, Reason.FREE_MODE, available, credit,
                              emergency_available=emergency_available)
    window = friendly_window(policy.friendly, calendar, at)
    friendly, detail = window if window else (None, None)
    may_start = available >= policy.start_minimum and available > 0
    exhausted = available - needed < 0
    must_stop = exhausted and friendly is None
    cut_supply = must_stop if supply_on else not (may_start or friendly is not None)
    if must_stop:
        reason = Reason.CREDIT_EXHAUSTED
    elif friendly is not None and (exhausted or not may_start):
        reason = friendly
    elif not may_start:
        reason = Reason.BELOW_START_MINIMUM
    else:
        reason = Reason.OK
    return CreditDecision(may_start, must_stop, cut_supply, reason, available, credit,
                          friendly, detail, emergency_available)
