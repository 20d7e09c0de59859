"""The allocator, without I/O: the fuse is never exceeded on any phase, sessions get their
minimum or are paused, paused ones come back in turn, and constant input gives constant limits."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.load.allocation import (
    Allocation,
    LoadSettings,
    SessionLoad,
    allocate,
)

T0 = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
D = Decimal


def session(key: str, minutes: int = 0, phases: tuple[int, ...] = (1, 2, 3),
            max_a: str = "16", **kw: object) -> SessionLoad:
    return SessionLoad(key=key, phases=phases, max_current_a=D(max_a),
                       started_at=T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def check_fuse(config: LoadSettings, base: dict[int, Decimal], sessions: list[SessionLoad],
               result: Allocation) -> None:
    for p in (1, 2, 3)[: config.phases]:
        controlled = sum((result.granted[s.key].limit_a for s in sessions
                          if s.controllable and p in s.phases), D(0))
        fixed = sum((s.max_current_a for s in sessions if not s.controllable and p in s.phases),
                    D(0))
        room = config.limit_a - config.reserve_a - max(base.get(p, D(0)), D(0)) - fixed
        assert controlled <= max(room, D(0)), (p, controlled, room)


def test_equal_share_splits_what_the_building_leaves() -> None:
    config = LoadSettings(limit_a=D(63), reserve_a=D(3))
    sessions = [session("a"), session("b", 1), session("c", 2)]
    result = allocate(config, {1: D(20), 2: D(20), 3: D(20)}, sessions, Allocation(), T0)
    # 63 - 3 - 20 = 40 A per phase for three cars: 13.3 A each, sent as whole 13 A.
    assert [result.granted[k].limit_a for k in "abc"] == [D(13)] * 3


def test_a_session_that_cannot_get_six_amperes_is_paused_and_resumed_later() -> None:
    config = LoadSettings(limit_a=D(32), rotate_after_s=600)
    sessions = [session("a"), session("b", 1), session("c", 2)]
    first = allocate(config, {1: D(18), 2: D(18), 3: D(18)}, sessions, Allocation(), T0)
    # 14 A free: two cars at 7 A, the third waits.
    assert sorted(g.limit_a for g in first.granted.values()) == [D(0), D(7), D(7)]
    paused = next(k for k, g in first.granted.items() if g.limit_a == 0)
    later = T0 + timedelta(minutes=11)
    second = allocate(config, {1: D(18), 2: D(18), 3: D(18)}, sessions, first, later)
    assert second.granted[paused].limit_a > 0  # its turn came
    assert sum(1 for g in second.granted.values() if g.limit_a == 0) == 1


def test_first_come_fills_the_earliest_first() -> None:
    config = LoadSettings(limit_a=D(40), strategy="first-come")
    sessions = [session("late", 5), session("early", 0)]
    result = allocate(config, {}, sessions, Allocation(), T0)
    assert result.granted["early"].limit_a == D(16)
    assert result.granted["late"].limit_a == D(16)
    tight = allocate(LoadSettings(limit_a=D(24), strategy="first-come"), {}, sessions,
                     Allocation(), T0)
    assert tight.granted["early"].limit_a == D(16) and tight.granted["late"].limit_a == D(8)


def test_priority_and_earliest_departure_come_first() -> None:
    config = LoadSettings(limit_a=D(12), strategy="priority")
    sessions = [session("low", 0, priority=0), session("high", 5, priority=2)]
    result = allocate(config, {}, sessions, Allocation(), T0)
    assert result.granted["high"].limit_a == D(12) and result.granted["low"].limit_a == 0
    leaving = [session("stays", 0, departure=T0 + timedelta(hours=9)),
               session("leaves", 5, departure=T0 + timedelta(hours=1))]
    # Equal share: room for one only (10 A); the car leaving first charges.
    result = allocate(LoadSettings(limit_a=D(10)), {}, leaving, Allocation(), T0)
    assert result.granted["leaves"].limit_a == D(10) and result.granted["stays"].limit_a == 0


def test_a_car_drawing_little_leaves_the_rest_to_others() -> None:
    config = LoadSettings(limit_a=D(32))
    sessions = [session("full", 0), session("slow", 1, drawn_a=D(6))]
    result = allocate(config, {}, sessions, Allocation(), T0)
    assert result.granted["slow"].limit_a == D(8)  # its draw plus 2 A headroom
    assert result.granted["full"].limit_a == D(16)


def test_an_uncontrollable_station_counts_as_its_maximum() -> None:
    config = LoadSettings(limit_a=D(32))
    sessions = [session("offline", 0, controllable=False), session("ok", 1)]
    result = allocate(config, {}, sessions, Allocation(), T0)
    assert "offline" not in result.granted
    assert result.granted["ok"].limit_a == D(16)


def test_single_phase_cars_use_only_their_phase() -> None:
    config = LoadSettings(limit_a=D(20))
    sessions = [session("l1", 0, phases=(1,)), session("three", 1)]
    result = allocate(config, {}, sessions, Allocation(), T0)
    assert result.granted["l1"].limit_a == D(10)
    assert result.granted["three"].limit_a == D(10)


def test_limits_go_down_at_once_and_up_only_by_a_step_after_the_hold() -> None:
    config = LoadSettings(limit_a=D(40), raise_hold_s=30, step_a=D(1))
    sessions = [session("a")]
    first = allocate(config, {1: D(30), 2: D(30), 3: D(30)}, sessions, Allocation(), T0)
    assert first.granted["a"].limit_a == D(10)
    lower = allocate(config, {1: D(32), 2: D(32), 3: D(32)}, sessions, first,
                     T0 + timedelta(seconds=1))
    assert lower.granted["a"].limit_a == D(8)  # at once
    early = allocate(config, {1: D(25), 2: D(25), 3: D(25)}, sessions, lower,
                     T0 + timedelta(seconds=10))
    assert early.granted["a"].limit_a == D(8)  # too soon to raise
    small = allocate(config, {1: D("31.5"), 2: D("31.5"), 3: D("31.5")}, sessions, lower,
                     T0 + timedelta(seconds=60))
    assert small.granted["a"].limit_a == D(8)  # 0.5 A more is no step
    later = allocate(config, {1: D(25), 2: D(25), 3: D(25)}, sessions, lower,
                     T0 + timedelta(seconds=60))
    assert later.granted["a"].limit_a == D(15)


def test_the_base_load_alone_over_the_fuse_pauses_everybody() -> None:
    config = LoadSettings(limit_a=D(35))
    result = allocate(config, {1: D(40)}, [session("a")], Allocation(), T0)
    assert result.granted["a"].limit_a == 0


amperes = st.decimals(min_value=0, max_value=80, places=1)
sessions_strategy = st.lists(
    st.tuples(st.sampled_from([(1, 2, 3), (1,), (2,), (3,)]),
              st.sampled_from(["16", "32", "10"]),
              st.integers(0, 120), st.booleans(), st.none() | amperes,
              st.integers(0, 3)),
    min_size=0, max_size=12)


def build(raw: list[tuple[tuple[int, ...], str, int, bool, Decimal | None, int]]
          ) -> list[SessionLoad]:
    return [session(f"s{i}", minutes, phases, max_a, controllable=ok, drawn_a=drawn,
                    priority=priority)
            for i, (phases, max_a, minutes, ok, drawn, priority) in enumerate(raw)]


@settings(max_examples=300, deadline=None)
@given(limit=st.decimals(min_value=16, max_value=250, places=0),
       reserve=st.decimals(min_value=0, max_value=10, places=0),
       base=st.tuples(amperes, amperes, amperes),
       raw=sessions_strategy,
       strategy=st.sampled_from(["equal", "first-come", "priority"]),
       steps=st.lists(st.tuples(amperes, amperes, amperes), min_size=1, max_size=5))
def test_the_fuse_holds_and_everybody_has_the_minimum_or_waits(
    limit: Decimal, reserve: Decimal, base: tuple[Decimal, Decimal, Decimal],
    raw: list[tuple[tuple[int, ...], str, int, bool, Decimal | None, int]],
    strategy: str, steps: list[tuple[Decimal, Decimal, Decimal]],
) -> None:
    config = LoadSettings(limit_a=limit, reserve_a=reserve, strategy=strategy)
    sessions = build(raw)
    previous = Allocation()
    now = T0
    for loads in [base, *steps]:
        now += timedelta(seconds=10)
        base_load = dict(zip((1, 2, 3), loads, strict=True))
        previous = allocate(config, base_load, sessions, previous, now)
        check_fuse(config, base_load, sessions, previous)
        for s in sessions:
            if s.controllable:
                granted = previous.granted[s.key].limit_a
                assert granted == 0 or config.min_current_a <= granted <= s.max_current_a


@settings(max_examples=200, deadline=None)
@given(limit=st.decimals(min_value=16, max_value=250, places=0),
       base=st.tuples(amperes, amperes, amperes), raw=sessions_strategy,
       strategy=st.sampled_from(["equal", "first-come", "priority"]))
def test_constant_input_gives_constant_limits(
    limit: Decimal, base: tuple[Decimal, Decimal, Decimal],
    raw: list[tuple[tuple[int, ...], str, int, bool, Decimal | None, int]], strategy: str,
) -> None:
    # Rotation is slower than this window: within it, nothing may flap.
    config = LoadSettings(limit_a=limit, strategy=strategy, rotate_after_s=3600)
    sessions = build(raw)
    base_load = dict(zip((1, 2, 3), base, strict=True))
    now = T0
    previous = allocate(config, base_load, sessions, Allocation(), now)
    second = allocate(config, base_load, sessions, previous, now + timedelta(seconds=10))
    seen = [second]
    for n in range(2, 30):
        seen.append(allocate(config, base_load, sessions, seen[-1],
                             now + timedelta(seconds=10 * n)))
    limits = [{k: g.limit_a for k, g in a.granted.items()} for a in seen]
    changes = sum(1 for a, b in itertools.pairwise(limits) if a != b)
    assert changes <= 1  # at most the one held-back raise, then still
