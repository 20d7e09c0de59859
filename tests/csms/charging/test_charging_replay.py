"""Property: a session's messages replayed with random duplication and reordering leave the
wallet exactly as the clean run does (both versions, over real sockets).

One node runs on an event loop in a background thread for all examples; each example is a new
transaction (its own id and time base) on the same wallet, and compares the wallet's change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.db.engine import create_engine
from csms.db.migrate import upgrade_database
from tests.csms.charging.conftest import T0, Box, Rig, close_rig, make_rig

T = TypeVar("T")

# (minute, register Wh, 2.0.1 charging state / 1.6 status before the reading)
READINGS = [(10, 1800, "Charging"), (20, 3600, "Charging"), (30, 5400, "SuspendedEV"),
            (40, 5400, "SuspendedEV"), (50, 6000, "Charging"), (60, 7200, "Charging")]
END = (75, 7200)


class Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def messages_201(tx: str, base: datetime) -> list[tuple[str, int, dict[str, Any]]]:
    at = lambda minute: base + timedelta(minutes=minute)  # noqa: E731
    items: list[tuple[str, int, dict[str, Any]]] = [
        ("Started", 0, {"at": at(0), "wh": 0, "state": "Charging", "token": "04A2B3C4"})]
    for seq, (minute, wh, state) in enumerate(READINGS, start=1):
        items.append(("Updated", seq, {"at": at(minute), "wh": wh, "state": state}))
    items.append(("Ended", len(READINGS) + 1, {"at": at(END[0]), "wh": END[1], "state": "Idle"}))
    return items


async def play_201(box: Box, tx: str, order: list[tuple[str, int, dict[str, Any]]]) -> None:
    for kind, seq, values in order:
        await box.event201(kind, seq, tx, values["at"], wh=values["wh"], state=values["state"],
                           token=values.get("token"))


async def play_16(box: Box, base: datetime, order: list[int], repeats: list[int]) -> int:
    """Start first (the id comes from its answer), the rest in `order`, Stop, then repeats."""
    at = lambda minute: base + timedelta(minutes=minute)  # noqa: E731
    tx = int((await box.start16("04A2B3C4", 0, at(0))).transaction_id)
    steps: list[Any] = []
    for minute, wh, state in READINGS:
        steps.append(lambda m=minute, s=state: box.status16(s, at(m - 5)))
        steps.append(lambda m=minute, w=wh: box.meter16(tx, w, at(m)))
    for index in order:
        await steps[index]()
    await box.stop16(tx, END[1], at(END[0]))
    for index in repeats:
        if index < len(steps):
            await steps[index]()
        elif index == len(steps):
            await box.start16("04A2B3C4", 0, at(0))
        else:
            await box.stop16(tx, END[1], at(END[0]))
    return tx


def test_replayed_sessions_end_with_the_same_wallet(tmp_path: Path) -> None:
    loop = Loop()
    engine = create_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    loop.run(upgrade_database(engine))
    rig: Rig = loop.run(make_rig(engine))
    try:
        box201 = loop.run(rig.box("WB-B-01"))
        box16 = loop.run(rig.box("WB-A-01"))
        counter = iter(range(1, 10_000))

        def base() -> datetime:
            # Each run its own hours, the server clock just after them (plausible arrivals).
            start = T0 + timedelta(hours=3 * next(counter))
            rig.clock.now = start + timedelta(minutes=90)
            return start

        def wallet() -> tuple[Decimal, Decimal]:
            return loop.run(rig.balance()), loop.run(rig.held())

        before = wallet()
        loop.run(play_201(box201, "clean-201", messages_201("clean-201", base())))
        after = wallet()
        clean_201 = after[0] - before[0]
        assert after[1] == before[1] and clean_201 < 0
        before = wallet()
        loop.run(play_16(box16, base(), list(range(2 * len(READINGS))), []))
        after = wallet()
        clean_16 = after[0] - before[0]
        assert after[1] == before[1] and clean_16 < 0

        @settings(max_examples=12, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.data())
        def replay_201(data: st.DataObject) -> None:
            tx = f"r201-{next(counter)}"
            items = messages_201(tx, base())
            copies = data.draw(st.lists(st.integers(1, 3), min_size=len(items),
                                        max_size=len(items)))
            stream = [item for item, n in zip(items, copies, strict=True) for _ in range(n)]
            order = data.draw(st.permutations(stream))
            start = wallet()
            loop.run(play_201(box201, tx, list(order)))
            end = wallet()
            assert end[0] - start[0] == clean_201
            assert end[1] == start[1]

        @settings(max_examples=12, deadline=None)
        @given(st.data())
        def replay_16(data: st.DataObject) -> None:
            steps = 2 * len(READINGS)
            order = data.draw(st.permutations(
                list(range(steps)) + data.draw(st.lists(st.integers(0, steps - 1),
                                                        max_size=4))))
            repeats = data.draw(st.lists(st.integers(0, steps + 1), max_size=5))
            start = wallet()
            loop.run(play_16(box16, base(), list(order), repeats))
            end = wallet()
            assert end[0] - start[0] == clean_16
            assert end[1] == start[1]

        replay_201()
        replay_16()
    finally:
        loop.run(close_rig(rig))
        loop.run(engine.dispose())
        loop.close()
