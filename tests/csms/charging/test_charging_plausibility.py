"""Plausibility before money: a station reporting more energy than its connector can deliver in
the time is billed only the plausible part; the session is ended and held for staff review.

The property test drives real OCPP sessions of both versions with random, often absurd meter
values and timestamps, on a tariff without a price cap, and checks that no wallet ever moves by
more than the station could have delivered in the session's time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from csms.db.engine import session_factory
from csms.inventory.models import DEFAULT_MAX_POWER_W
from tests.csms.charging.conftest import (
    Rig,
    close_rig,
    demo_document,
    make_rig,
    minutes,
    wait_until,
)
from wallet.models import AlertOutbox

ENERGY_PRICE, TIME_PRICE, IDLE_PRICE = Decimal("0.39"), Decimal("1.20"), Decimal("3.00")


def uncapped_document() -> dict[str, Any]:
    """The demo site with no price cap on the wallbox tariff (so only plausibility bounds the
    bill) and wallets large enough never to run out."""
    document = demo_document()
    for tariff in document["tariffs"]:
        tariff.pop("max_price", None)
    for account in document["accounts"]:
        account["opening_balance"] = "400.00"
    return document


@pytest.fixture
async def uncapped(sqlite_engine: AsyncEngine) -> AsyncIterator[Rig]:
    running = await make_rig(sqlite_engine, document=uncapped_document())
    yield running
    await close_rig(running)


async def test_an_absurd_reading_is_billed_only_up_to_the_connector(uncapped: Rig) -> None:
    rig = uncapped
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    await box.meter16(tx, 5_000, minutes(30))  # 10 kW: plausible
    # Two gigawatt-hours in a minute (within 32 bits, so the frame itself is valid).
    await box.meter16(tx, 2_000_000_000, minutes(31))
    await rig.settle_commands()
    row = await rig.session(tx)
    # The plausible part only: 5 kWh, then at most 22,080 W for one minute (368 Wh).
    assert row.status == "completed" and row.energy_wh == 5_000 + 368
    assert {"implausible_energy", "held_for_review"} <= set(row.flags)
    assert box.memory.remote_stops, "the station is asked to stop"
    assert await rig.balance() == Decimal("400.00") - (row.gross or 0)
    assert row.gross is not None and Decimal("0") < row.gross < Decimal("5.00")
    async with session_factory(rig.engine)() as db:
        alerts = (await db.exec(select(AlertOutbox).where(
            AlertOutbox.kind == "usage_held_for_review"))).all()
    assert [(a.audience, a.payload["implausible_wh"]) for a in alerts] == [
        ("staff", 2_000_000_000 - 5_368)]
    # The station's own stop later moves no more money.
    before = await rig.balance()
    await box.stop16(tx, 2_000_000_000, minutes(32))
    assert await rig.balance() == before


async def test_a_final_absurd_stop_of_2_0_1_is_held_too(uncapped: Rig) -> None:
    rig = uncapped
    box = await rig.box("WB-B-01")
    await box.event201("Started", 0, "tx-absurd", minutes(0), wh=0, token="04A2B3C4",
                       state="Charging")
    rig.clock.at(10)
    await box.event201("Ended", 1, "tx-absurd", minutes(10), wh=900_000_000, state="Idle",
                       reason="Local")
    row = await rig.session_by_tx("WB-B-01", "tx-absurd")
    most = -(-DEFAULT_MAX_POWER_W * 600 // 3600)
    assert row.status == "completed" and row.energy_wh == most
    assert "held_for_review" in row.flags
    assert await rig.balance() == Decimal("400.00") - (row.gross or 0)


READINGS = st.lists(
    st.tuples(
        # minutes after the previous message; some timestamps far in the past or future
        st.one_of(st.integers(0, 90), st.sampled_from([-60 * 24 * 40, 60 * 24 * 10, -5])),
        # the register: plausible growth or absurd values, backwards included
        st.one_of(st.integers(0, 20_000), st.sampled_from([2_000_000_000, 10**9, 0, 123])),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(version=st.sampled_from(["ocpp1.6", "ocpp2.0.1"]), readings=READINGS,
       stop_wh=st.one_of(st.integers(0, 40_000), st.just(2_000_000_000)))
async def test_no_wallet_moves_beyond_what_the_station_could_deliver(
    uncapped: Rig, version: str, readings: list[tuple[int, int]], stop_wh: int
) -> None:
    rig = uncapped
    station = "WB-A-01" if version == "ocpp1.6" else "WB-B-01"
    box = next((b for b in rig.boxes if b.sim.station_id == station), None)
    box = box or await rig.box(station)
    before = await rig.balance()
    base = rig.clock.now + timedelta(hours=1)
    rig.clock.now = base
    at, register = base, 0
    if version == "ocpp1.6":
        tx = str((await box.start16("04A2B3C4", 0, at)).transaction_id)
    else:
        tx = f"p-{base.timestamp():.0f}"
        await box.event201("Started", 0, tx, at, wh=0, token="04A2B3C4", state="Charging")
    for number, (step, value) in enumerate(readings, start=1):
        at = at + timedelta(minutes=step)
        register = value if value >= 10**9 or value == 123 else register + value
        if version == "ocpp1.6":
            await box.meter16(int(tx), register, at)
        else:
            await box.event201("Updated", number, tx, at, wh=register, state="Charging")
    end = max(at, base) + timedelta(minutes=1)
    if version == "ocpp1.6":
        await box.stop16(int(tx), stop_wh, end)
    else:
        await box.event201("Ended", len(readings) + 1, tx, end, wh=stop_wh, state="Idle",
                           reason="Local")
    await rig.settle_commands()
    row = await rig.session_by_tx(station, tx)
    await wait_until(lambda: row.status == "completed")
    assert row.started_at is not None and row.ended_at is not None
    hours = Decimal((row.ended_at - row.started_at).total_seconds()) / 3600
    most_wh = DEFAULT_MAX_POWER_W * hours + 1
    assert row.energy_wh <= most_wh
    # Every component at its highest price for the whole session, VAT on top: the most any
    # usage of this length could cost (the tariff has no cap here).
    most_money = (ENERGY_PRICE * most_wh / 1000 + (TIME_PRICE + IDLE_PRICE) * hours) * (
        Decimal("1.19")) + Decimal("0.51")
    moved = before - await rig.balance()
    assert moved == (row.gross or 0) and moved <= most_money
    rig.clock.now = max(rig.clock.now, end) + timedelta(hours=1)
