"""The running rating grown message by message equals a rebuild from every point (build_usage +
pricing.rate), whatever the messages: in order, reordered, repeated, with register resets and
connector states; when it cannot append it says so and the rebuild is used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.live_usage import LiveUsage, NotAppendable
from billing.usage import Point, build_usage
from pricing import Tariff, load_tariff, rate
from tests.pricing.strategies import tariffs

T0 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
STATES = st.sampled_from([None, None, "Charging", "SuspendedEV", "SuspendedEVSE", "Charging"])


@st.composite
def messages(draw: st.DrawFn) -> list[list[Point]]:
    """A session's messages: each a few points (a reading, maybe a state), mostly in time order,
    sometimes late, repeated or with a register that went backwards."""
    count = draw(st.integers(1, 25))
    minute, register = 0, draw(st.integers(0, 50_000))
    result: list[list[Point]] = []
    for _ in range(count):
        minute += draw(st.integers(0, 30))
        register += draw(st.one_of(st.integers(0, 4_000), st.just(10**9)))
        if draw(st.integers(0, 30)) == 0:
            register = draw(st.integers(0, register))  # meter exchanged
        at = T0 + timedelta(minutes=minute, seconds=draw(st.sampled_from([0, 0, 0, 17])))
        message = [Point(at, register, None)]
        state = draw(STATES)
        if state is not None:
            shift = draw(st.sampled_from([timedelta(0), timedelta(0), timedelta(seconds=-30)]))
            message.append(Point(at + shift, None, state))
        if draw(st.integers(0, 6)) == 0:
            message = [Point(at, None, state or "SuspendedEV")]  # a state change alone
        result.append(message)
    if count > 2 and draw(st.booleans()):
        late = draw(st.integers(0, count - 1))
        result.append(result[late])  # a retransmission
    if count > 3 and draw(st.booleans()):
        i, j = draw(st.integers(0, count - 1)), draw(st.integers(0, count - 1))
        result[i], result[j] = result[j], result[i]  # a reordering
    return result


def rebuilt(
    points: list[Point], start: datetime, tariff: Tariff, max_power_w: int | None
) -> tuple[object, ...] | None:
    built = build_usage(points, start=start, max_power_w=max_power_w)
    if built is None:
        return None
    bill = rate(tariff, built.usage)
    return (bill, built.energy_wh, built.duration_s, built.idle_s, built.last_register_wh,
            built.register_reset, built.usage.samples[-1], built.implausible_wh)


@settings(max_examples=300, deadline=None)
@given(tariff=tariffs(), stream=messages(), max_power_w=st.sampled_from([None, 22_080, 3_000]))
def test_growing_equals_rebuilding(
    tariff: Tariff, stream: list[list[Point]], max_power_w: int | None
) -> None:
    start = T0
    seen: list[Point] = []
    live: LiveUsage | None = None
    for message in stream:
        new = [p for p in message if p not in seen]
        seen.extend(new)
        if live is not None:
            try:
                live.grow(new)
            except NotAppendable:
                live = None
        if live is None:
            live = LiveUsage.of(seen, start=start, tariff=tariff, max_power_w=max_power_w)
        expected = rebuilt(seen, start, tariff, max_power_w)
        if live is None:
            assert expected is None
            continue
        figures = live.figures()
        assert (live.bill, figures.energy_wh, figures.duration_s, figures.idle_s,
                figures.last_register_wh, figures.register_reset, figures.last,
                figures.implausible_wh) == expected


def test_in_order_readings_are_appended_not_rebuilt() -> None:
    tariff = load_tariff({"id": "t", "currency": "EUR", "vat_percent": "19", "components": [
        {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.39"}]}]})
    points = [Point(T0, 0, "Charging")]
    live = LiveUsage.of(points, start=T0, tariff=tariff)
    assert live is not None
    for minute in range(1, 200):
        live.grow([Point(T0 + timedelta(minutes=minute), minute * 100, "Charging")])
    assert live.figures().energy_wh == 19_900 and live.figures().duration_s == 199 * 60
    try:
        live.grow([Point(T0 + timedelta(minutes=150), 15_000, None)])
    except NotAppendable:
        pass
    else:
        raise AssertionError("a reading before the last was appended")
    assert live.figures().energy_wh == 19_900  # unchanged by the refused message
