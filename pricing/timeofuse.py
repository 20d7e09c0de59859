"""Local days and time-of-use windows as UTC instants (integer microseconds since the epoch).

Everything here is computed per local day and memoised, so rating a session touches the zone
database and the holiday calendar once per day crossed, not once per sample.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from pricing.parts import Window

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_LIMIT = 4096


class HolidayCalendar(Protocol):
    def __contains__(self, key: object) -> bool: ...


def instant_us(moment: datetime) -> int:
    """An aware datetime as exact integer microseconds since the epoch."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def datetime_of(instant: int, tz: ZoneInfo | None = None) -> datetime:
    moment = _EPOCH + timedelta(microseconds=instant)
    return moment.astimezone(tz) if tz is not None else moment


class LocalCalendar:
    """Local midnights, window spans and holidays of one tariff's zone and country."""

    __slots__ = ("_holidays", "_midnights", "_tz")

    def __init__(self, tz: ZoneInfo, holidays: HolidayCalendar | None) -> None:
        self._tz = tz
        self._holidays = holidays
        self._midnights: dict[int, int] = {}

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def local(self, ordinal: int, minute: int) -> int:
        """The instant of local wall time `minute` (0..1440) on the day `ordinal`.

        A wall time that a DST gap skips means the first instant after the gap; one that a DST
        fold repeats means its first occurrence (fold=0).
        """
        day = date.fromordinal(ordinal)
        if minute >= 1440:
            day += timedelta(days=1)
            minute -= 1440
        wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self._tz)
        first = instant_us(wall)
        if datetime_of(first, self._tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
            return first
        # In a gap: fold=1 reads the wall time with the later offset, which lands before the
        # transition; the transition itself is the first instant after the gap.
        low = instant_us(wall.replace(fold=1)) // US
        high = first // US
        after = datetime_of(high * US, self._tz).utcoffset()
        while low < high:
            middle = (low + high) // 2
            if datetime_of(middle * US, self._tz).utcoffset() == after:
                high = middle
            else:
                low = middle + 1
        return high * US

    def midnight(self, ordinal: int) -> int:
        found = self._midnights.get(ordinal)
        if found is None:
            if len(self._midnights) > _CACHE_LIMIT:
                self._midnights.clear()
            found = self._midnights[ordinal] = self.local(ordinal, 0)
        return found

    def ordinal_of(self, instant: int) -> int:
        """The local date (proleptic ordinal) of an instant."""
        return datetime_of(instant - instant % US, self._tz).toordinal()

    def is_holiday(self, ordinal: int) -> bool:
        return self._holidays is not None and date.fromordinal(ordinal) in self._holidays

    def day_matches(self, window: Window, ordinal: int) -> bool:
        weekday = (ordinal - 1) % 7  # ordinal 1 (0001-01-01) was a Monday
        if weekday in window.weekdays:
            return True
        return window.holiday and self.is_holiday(ordinal)

    def span(self, window: Window, ordinal: int) -> tuple[int, int] | None:
        """The window as opened on day `ordinal`, or None when the day does not match."""
        if not self.day_matches(window, ordinal):
            return None
        start = self.local(ordinal, window.opens)
        end = self.local(ordinal + 1, window.closes) if window.wraps else self.local(
            ordinal, window.closes
        )
        return start, end

    def matches(self, window: Window | None, instant: int) -> bool:
        if window is None:
            return True
        ordinal = self.ordinal_of(instant)
        for opened in (ordinal - 1, ordinal):
            span = self.span(window, opened)
            if span is not None and span[0] <= instant < span[1]:
                return True
        return False


class Switchboard:
    """Which of a dimension's components applies at each instant: the first whose window matches.

    `at(t)` answers the applying component's position (None where none matches) and the next
    instant at which the answer may change. Day schedules are memoised.
    """

    __slots__ = ("_calendar", "_days", "_windows")

    def __init__(self, calendar: LocalCalendar, windows: Sequence[Window | None]) -> None:
        self._calendar = calendar
        self._windows = tuple(windows)
        self._days: dict[int, tuple[tuple[int, ...], tuple[int | None, ...], int]] = {}

    def at(self, instant: int) -> tuple[int | None, int]:
        ordinal = self._calendar.ordinal_of(instant)
        starts, owners, end = self._day(ordinal)
        position = bisect_right(starts, instant) - 1
        if position < 0:  # the zone's day began earlier than computed (cannot happen, but safe)
            return owners[0], starts[0]
        following = starts[position + 1] if position + 1 < len(starts) else end
        return owners[position], following

    def _day(self, ordinal: int) -> tuple[tuple[int, ...], tuple[int | None, ...], int]:
        found = self._days.get(ordinal)
        if found is not None:
            return found
        calendar = self._calendar
        begin, end = calendar.midnight(ordinal), calendar.midnight(ordinal + 1)
        spans: list[list[tuple[int, int]]] = []
        edges = {begin}
        for window in self._windows:
            opened: list[tuple[int, int]] = []
            if window is not None:
                for day in (ordinal - 1, ordinal):
                    span = calendar.span(window, day)
                    if span is not None and span[0] < end and span[1] > begin and span[0] < span[1]:
                        opened.append(span)
                        edges.update(edge for edge in span if begin < edge < end)
            spans.append(opened)
        starts: list[int] = []
        owners: list[int | None] = []
        for edge in sorted(edges):
            owner: int | None = None
            for position, window in enumerate(self._windows):
                if window is None or any(s <= edge < e for s, e in spans[position]):
                    owner = position
                    break
            if owners and owners[-1] == owner:
                continue
            starts.append(edge)
            owners.append(owner)
        if len(self._days) > _CACHE_LIMIT:
            self._days.clear()
        found = self._days[ordinal] = (tuple(starts), tuple(owners), end)
        return found
