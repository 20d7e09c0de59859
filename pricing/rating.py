"""Rating: one engine for the final bill (`rate`) and the running cost (`LiveRater`).

The engine walks a session once, in time order, and keeps per dimension only what the future
cannot change: the pieces of the session that end at a window boundary (or a demand interval, or
a local day) already passed are priced and remembered ("settled"). A bill then prices only what
is still open: the piece since the last boundary, step rounding, grace, flat fee and totals.
`rate()` settles a whole session at once, `LiveRater` sample by sample; both run the same code
on the same series, and all arithmetic is exact, so after every sample they agree to the last
digit. Cost grows with boundaries and tiers crossed, not with the number of samples: the value
of a dimension at a boundary is interpolated from the samples around it (found by bisection).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from typing import Protocol

from pricing.bill import Bill, Line, Number, plain_quantity, quantize
from pricing.errors import Problems, TariffError
from pricing.model import Tariff
from pricing.plan import MeteredPlan
from pricing.timeofuse import US, datetime_of, instant_us
from pricing.usage import Sample, Usage, check_sample

_CENT = Decimal("0.01")
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP)
_UNIT_LABEL = {"energy": ("Wh", "kWh"), "time": ("s", "h"), "idle": ("s", "h")}

LineKey = tuple[int | None, int | None, str | None]  # component position, tier, note


class Series(Protocol):
    @property
    def times(self) -> Sequence[int]: ...
    @property
    def energy(self) -> Sequence[Number]: ...
    @property
    def idle(self) -> Sequence[int]: ...
    @property
    def charging(self) -> Sequence[bool]: ...


def _energy_at(series: Series, instant: int) -> Number:
    times = series.times
    energy = series.energy
    j = bisect_left(times, instant)
    if times[j] == instant:
        return energy[j]
    before = energy[j - 1]
    rise = energy[j] - before
    if rise == 0:
        return before
    numerator = rise * (instant - times[j - 1])
    denominator = times[j] - times[j - 1]
    if numerator % denominator == 0:
        return before + numerator // denominator
    return before + Fraction(numerator, denominator)


def _idle_at(series: Series, instant: int) -> int:
    times = series.times
    j = bisect_left(times, instant)
    if times[j] == instant:
        return series.idle[j]
    return series.idle[j - 1] + (0 if series.charging[j] else instant - times[j - 1])


def _quantity_at(dimension: str, series: Series, instant: int) -> Number:
    """The dimension's cumulative quantity from the session start to `instant`."""
    if dimension == "energy":
        return _energy_at(series, instant) - series.energy[0]
    if dimension == "time":
        return instant - series.times[0]
    return _idle_at(series, instant)


def _total(dimension: str, series: Series) -> Number:
    if dimension == "energy":
        return series.energy[-1] - series.energy[0]
    if dimension == "time":
        return series.times[-1] - series.times[0]
    return series.idle[-1]


class _Walk:
    """The running position along a dimension's cumulative quantity and the money per line."""

    __slots__ = ("lines", "position")

    def __init__(self, position: Number = 0, lines: dict[LineKey, tuple[Number, Number]] | None
                 = None) -> None:
        self.position = position
        self.lines: dict[LineKey, tuple[Number, Number]] = lines if lines is not None else {}

    def copy(self) -> _Walk:
        return _Walk(self.position, dict(self.lines))

    def _add(self, key: LineKey, quantity: Number, money: Number) -> None:
        old = self.lines.get(key)
        self.lines[key] = (quantity, money) if old is None else (old[0] + quantity,
                                                                 old[1] + money)

    def feed(self, plan: MeteredPlan, component: int | None, quantity: Number,
             note: str | None = None) -> None:
        """Price `quantity` consumed under `component`, onward from the current position."""
        if quantity <= 0:
            return
        start = self.position
        end = start + quantity
        self.position = end
        if component is None:
            self._add((None, None, "unpriced"), quantity, 0)
            return
        starts = plan.starts[component]
        money = plan.unit_money[component]
        free = plan.free
        tier = bisect_right(starts, start) - 1
        last = len(starts) - 1
        while start < end:
            tier_end = end if tier == last or starts[tier + 1] >= end else starts[tier + 1]
            paid_from = start
            if start < free:
                paid_from = free if free < tier_end else tier_end
                self._add((component, tier, "free"), paid_from - start, 0)
            if tier_end > paid_from:
                paid = tier_end - paid_from
                self._add((component, tier, note), paid, paid * money[tier])
            start = tier_end
            tier += 1


class _Metered:
    """Settled state of one metered dimension that has time-of-use windows."""

    __slots__ = ("component", "next_change", "plan", "settled", "walk")

    def __init__(self, plan: MeteredPlan, start: int) -> None:
        assert plan.board is not None
        self.plan = plan
        self.component, self.next_change = plan.board.at(start)
        self.settled: Number = 0  # the dimension's quantity at the last boundary passed
        self.walk = _Walk()

    def settle(self, series: Series, until: int) -> None:
        board = self.plan.board
        assert board is not None
        while self.next_change <= until:
            reached = _quantity_at(self.plan.dimension, series, self.next_change)
            self.walk.feed(self.plan, self.component, reached - self.settled)
            self.settled = reached
            self.component, self.next_change = board.at(self.next_change)


class _Engine:
    __slots__ = ("day_counts", "days_through", "demand_best", "demand_end", "demand_peak_at",
                 "demand_start", "flat", "flat_line", "line_cache", "metered", "plan", "start",
                 "tariff")

    def __init__(self, tariff: Tariff, first: Series) -> None:
        plan = tariff.plan
        self.tariff = tariff
        self.plan = plan
        self.start = first.times[0]
        self.metered = {
            m.dimension: _Metered(m, self.start) for m in plan.metered if m.board is not None
        }
        self.flat = next(
            ((c, money) for c, money in plan.flats if plan.matches(c.when, self.start)), None
        )
        self.flat_line: tuple[Line, Number] | None = None
        if self.flat is not None:
            component, money = self.flat
            self.flat_line = (self._line("flat", component.index, component.name, None,
                                         component.when.text if component.when else None,
                                         Decimal(1), "session", component.price, "session",
                                         money), money)
        self.line_cache: dict[tuple[object, ...], Line] = {}
        self.day_counts = [0] * len(plan.days)
        self.days_through: int | None = None  # last local day counted (ordinal)
        if plan.demand is not None:
            length = plan.demand[0].interval_s * US
            self.demand_end = (self.start // length + 1) * length
            self.demand_start: Number = first.energy[0]
            self.demand_best: Number = -1
            self.demand_peak_at = self.start

    def settle(self, series: Series) -> None:
        until = series.times[-1]
        for state in self.metered.values():
            if state.next_change <= until:
                state.settle(series, until)
        if self.plan.demand is not None:
            length = self.plan.demand[0].interval_s * US
            while self.demand_end <= until:
                reached = _energy_at(series, self.demand_end)
                if reached - self.demand_start > self.demand_best:
                    self.demand_best = reached - self.demand_start
                    self.demand_peak_at = max(self.demand_end - length, self.start)
                self.demand_start = reached
                self.demand_end += length
        if (self.plan.days or self.plan.recovery is not None) and until > self.start:
            self._count_days(until)

    def _count_days(self, until: int) -> None:
        calendar = self.plan.calendar
        if calendar is None:
            return
        last = calendar.ordinal_of(until - 1)  # a day counts once the session is inside it
        day = calendar.ordinal_of(self.start) if self.days_through is None else (
            self.days_through + 1
        )
        while day <= last:
            for position, (component, _) in enumerate(self.plan.days):
                if component.when is None or calendar.day_matches(component.when, day):
                    self.day_counts[position] += 1
                    break
            day += 1
        self.days_through = last

    def bill(self, series: Series) -> Bill:
        plan = self.plan
        tariff = self.tariff
        lines: dict[str, list[tuple[Line, Number]]] = {}
        graced = 0  # dimensions that have a grace, and how many stayed inside it
        inside = 0
        for dimension_plan in plan.metered:
            dimension = dimension_plan.dimension
            total = _total(dimension, series)
            if dimension_plan.table is not None:
                lines[dimension] = self._table(dimension_plan, total)
                continue
            state = self.metered.get(dimension)
            if state is not None:
                walk = state.walk.copy()
                last = state.component
                walk.feed(dimension_plan, last, total - state.settled)
            else:
                walk = _Walk()
                last = 0
                walk.feed(dimension_plan, 0, total)
            step = dimension_plan.step
            if step > 1:
                walk.feed(dimension_plan, last, -total % step, "step")
            if dimension_plan.has_grace:
                graced += 1
                if total <= dimension_plan.grace:
                    inside += 1
                    lines[dimension] = [self._grace_line(dimension_plan, total)]
                    continue
            cache = self.line_cache
            if len(cache) > 512:
                cache.clear()
            priced: list[tuple[Line, Number]] = []
            for key, (quantity, money) in walk.lines.items():
                # A live session re-bills lines that did not change since the last sample.
                memo = (dimension, key, quantity, money)
                line = cache.get(memo)
                if line is None:
                    line = cache[memo] = self._metered_line(dimension_plan, key, quantity, money)
                priced.append((line, money))
            lines[dimension] = priced
        void = graced > 0 and inside == graced
        if self.flat_line is not None:
            lines["flat"] = [self.flat_line]
        if plan.days:
            lines["day"] = [
                (self._line("day", c.index, c.name, None, c.when.text if c.when else None,
                            Decimal(count), "day", c.price, "day", count * money), count * money)
                for (c, money), count in zip(plan.days, self.day_counts, strict=True) if count
            ]
        if plan.demand is not None:
            lines["demand"] = [self._demand_line(series)]

        ordered: list[tuple[Line, Number]] = []
        for name in plan.order:
            ordered.extend(lines.get(name, ()))
        subtotal: Number = 0
        for _, amount in ordered:
            subtotal += amount
        if void:
            ordered = [(_voided(line), 0) for line, _ in ordered]
            subtotal = 0
        net_exact = subtotal
        adjustment = None
        if plan.minimum is not None and 0 < net_exact < plan.minimum:
            net_exact, adjustment = plan.minimum, "min_price"
        if plan.maximum is not None and net_exact > plan.maximum:
            net_exact, adjustment = plan.maximum, "max_price"
        net = quantize(net_exact, plan.scale, 4)
        gross = _CONTEXT.multiply(net, plan.vat_factor).quantize(_CENT, context=_CONTEXT)
        if gross < net or plan.vat_factor == 1:
            # Gross is what the driver pays, in whole cents; a few Wh (or a 0 % VAT rate with
            # sub-cent net) can round it below the net. The sub-cent is forgone, not charged:
            # net follows gross down, so VAT is never negative. Without VAT, net is what is
            # paid, so the rounding is not booked as VAT either.
            net = gross.quantize(net)
        recovery_lines = [] if void else self._recovery(series)
        recovery_money: Number = 0
        for _, amount in recovery_lines:
            recovery_money += amount
        recovery = quantize(recovery_money, plan.scale, 2)
        return Bill(
            currency=tariff.currency,
            net=net,
            vat=gross - net,
            gross=gross,
            lines=tuple(line for line, _ in ordered + recovery_lines),
            subtotal=quantize(subtotal, plan.scale, 4),
            adjustment=adjustment,
            void=void,
            recovery=recovery,
            total=gross + recovery,
            has_recovery=plan.recovery is not None,
        )

    def _line(self, dimension: str, component: int | None, name: str | None, tier: int | None,
              window: str | None, quantity: Decimal, unit: str, unit_price: Decimal, per: str,
              money: Number, note: str | None = None) -> Line:
        return Line(dimension, component, name, tier, window, quantity, unit, unit_price, per,
                    quantize(money, self.plan.scale, 4), note)

    def _metered_line(self, plan: MeteredPlan, key: LineKey, quantity: Number, money: Number
                      ) -> Line:
        position, tier, note = key
        unit, per = _UNIT_LABEL[plan.dimension]
        amount = plain_quantity(quantity, plan.per_unit)
        if position is None:
            return self._line(plan.dimension, None, None, None, None, amount, unit,
                              Decimal(0), per, 0, note)
        component = plan.components[position]
        assert tier is not None
        return self._line(plan.dimension, component.index, component.name, tier,
                          component.when.text if component.when else None, amount, unit,
                          component.tiers[tier].price, per, money, note)

    def _grace_line(self, plan: MeteredPlan, total: Number) -> tuple[Line, Number]:
        unit, per = _UNIT_LABEL[plan.dimension]
        return self._line(plan.dimension, None, None, None, None,
                          plain_quantity(total, plan.per_unit), unit, Decimal(0), per, 0,
                          "grace"), 0

    def _table(self, plan: MeteredPlan, total: Number) -> list[tuple[Line, Number]]:
        table = plan.table
        assert table is not None
        started = -(-total // plan.table_interval)  # interval n is billed once it starts
        unit, per = _UNIT_LABEL[plan.dimension]
        if plan.dimension == "time":
            per = f"{table.interval} s"
        rows = table.rows
        result: list[tuple[Line, Number]] = []
        before = min(rows[0][0] - 1, started)
        if before > 0:  # intervals before the first row cost nothing, but were consumed
            result.append((self._line(plan.dimension, table.index, table.name, None, None,
                                      Decimal(before * table.interval), unit, Decimal(0), per,
                                      0, "free"), 0))
        for position, (first, value) in enumerate(rows):
            last = rows[position + 1][0] - 1 if position + 1 < len(rows) else started
            count = min(last, started) - first + 1
            if count <= 0:
                continue
            money = count * plan.table_money[position]
            result.append((self._line(plan.dimension, table.index, table.name, position, None,
                                      Decimal(count * table.interval), unit, value, per, money),
                           money))
        return result

    def _demand_line(self, series: Series) -> tuple[Line, Number]:
        plan = self.plan
        assert plan.demand is not None
        component, price_money = plan.demand
        best, peak_at = self.demand_best, self.demand_peak_at
        open_now = series.energy[-1] - self.demand_start
        if open_now > best:
            length = component.interval_s * US
            best, peak_at = open_now, max(self.demand_end - length, self.start)
        best = max(best, 0)
        # Average kW over the interval: Wh * 3600 / interval_s / 1000.
        kilowatts = Fraction(best * 3600, component.interval_s * 1000)
        money = kilowatts * price_money
        calendar = plan.calendar
        when = datetime_of(peak_at, calendar.tz if calendar else None)
        return self._line("demand", component.index, component.name, None,
                          f"peak {component.interval_s // 60} min from {when.isoformat()}",
                          plain_quantity(kilowatts, 1), "kW", component.price, "kW",
                          money), money

    def _recovery(self, series: Series) -> list[tuple[Line, Number]]:
        plan = self.plan
        if plan.recovery is None:
            return []
        recovery, per_wh, per_day = plan.recovery
        energy = series.energy[-1] - series.energy[0]
        days = sum(self.day_counts) if plan.days else self._recovery_days(series)
        result: list[tuple[Line, Number]] = []
        if recovery.per_kwh:
            result.append((self._line("recovery", None, None, None, None,
                                      plain_quantity(energy, 1), "Wh",
                                      recovery.per_kwh, "kWh", energy * per_wh), energy * per_wh))
        if recovery.per_day:
            result.append((self._line("recovery", None, None, None, None, Decimal(days), "day",
                                      recovery.per_day, "day", days * per_day), days * per_day))
        return result

    def _recovery_days(self, series: Series) -> int:
        calendar = self.plan.calendar
        if calendar is None or series.times[-1] <= self.start:
            return 0
        return calendar.ordinal_of(series.times[-1] - 1) - calendar.ordinal_of(self.start) + 1


def _voided(line: Line) -> Line:
    if line.note == "grace":
        return line
    return Line(line.dimension, line.component, line.name, line.tier, line.window, line.quantity,
                line.unit, line.unit_price, line.per, Decimal("0.0000"), "void")


def rate(tariff: Tariff, usage: Usage) -> Bill:
    """Rate a whole session."""
    engine = _Engine(tariff, usage)
    engine.settle(usage)
    return engine.bill(usage)


class _Growing:
    """The series of a live session, appended to sample by sample."""

    __slots__ = ("charging", "energy", "idle", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.energy: list[int] = []
        self.idle: list[int] = []
        self.charging: list[bool] = []


class LiveRater:
    """The running cost of a session: `add(sample)` returns what `rate()` of all samples so far
    returns, at the cost of the boundaries the new sample crossed, not of the session so far."""

    __slots__ = ("_engine", "_last", "_series", "_tariff")

    def __init__(self, tariff: Tariff) -> None:
        self._tariff = tariff
        self._series = _Growing()
        self._engine: _Engine | None = None
        self._last: Sample | None = None

    @property
    def count(self) -> int:
        return len(self._series.times)

    def add(self, sample: Sample) -> Bill:
        """Append a sample (validated like a usage document's) and return the bill so far."""
        series = self._series
        try:
            instant = instant_us(sample.at)
            valid = (
                type(sample.energy_wh) is int
                and type(sample.charging) is bool
                and (not series.times or (instant > series.times[-1]
                                          and sample.energy_wh >= series.energy[-1]))
                and sample.energy_wh >= 0
            )
        except (TypeError, AttributeError):  # naive datetime, or not a Sample at all
            valid = False
        if not valid:  # the full check, for its messages
            problems = Problems()
            check_sample(sample, self.count, self._last, problems)
            problems.raise_if_any()
            raise TariffError([f"samples[{self.count}]: invalid sample {sample!r}"])
        if series.times:
            span = 0 if sample.charging else instant - series.times[-1]
            series.idle.append(series.idle[-1] + span)
        else:
            series.idle.append(0)
        series.times.append(instant)
        series.energy.append(sample.energy_wh)
        series.charging.append(sample.charging)
        self._last = sample
        if self._engine is None:
            self._engine = _Engine(self._tariff, series)
        self._engine.settle(series)
        return self._engine.bill(series)
