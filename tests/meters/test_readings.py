"""Readings stored and judged (SQLite and PostgreSQL): baselines and billable intervals, the
same instant stored once, flags for the installer, and billing across a meter exchange."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from meters.models import Meter, MeterReading
from meters.readings import (
    ExchangeError,
    StoredReading,
    meter_state,
    readings,
    record_exchange,
    record_failure,
    set_supply,
    store_reading,
)
from meters.registers import MeterValues
from tests.meters.meter_site import add_site, meter_entry, site_document, values

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    await add_site(engine, site_document("s1", [meter_entry("m-1", "a-01", 502, 1)]))
    return session_factory(engine)


async def store(
    sessions: async_sessionmaker[AsyncSession], at: datetime, reading: MeterValues
) -> StoredReading:
    async with sessions() as db:
        meter = await db.get(Meter, "m-1")
        assert meter is not None
        stored = await store_reading(db, meter, at, reading)
        await db.commit()
        return stored


async def state_flags(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as db:
        return (await meter_state(db, "m-1", lock=False)).flags


async def test_a_baseline_then_billable_intervals(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await store(sessions, T0, values(1_000_000, "1523.6"))
    assert first == StoredReading(
        meter_id="m-1", account_id="a-01", tariff_id="household", site_id="s1", at=T0,
        energy_wh=1_000_000, power_w=1524, billable=True, flags=(), previous_billable=None,
    )
    second = await store(sessions, minute(1), values(1_000_250))
    assert second.billable and second.previous_billable == (T0, 1_000_000)
    assert second.energy_wh == 1_000_250
    async with sessions() as db:
        state = await meter_state(db, "m-1", lock=False)
        assert (state.last_billable_at, state.last_billable_wh) == (minute(1), 1_000_250)
        assert (state.last_reading_at, state.last_energy_wh) == (minute(1), 1_000_250)
        assert state.supply == "on" and state.failures == 0 and state.flags == []


async def test_the_same_instant_is_stored_once(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await store(sessions, T0, values(1_000_000))
    stored = await store(sessions, minute(1), values(1_000_250))

    async def rows() -> list[tuple[object, ...]]:
        async with engine.connect() as connection:
            result = await connection.execute(text(
                "SELECT * FROM meter_reading ORDER BY at"))
            state = await connection.execute(text("SELECT * FROM meter_state"))
            return [tuple(r) for r in result] + [tuple(r) for r in state]

    before = await rows()
    # polled again at the same instant, even with another register: the stored one stands
    again = await store(sessions, minute(1), values(1_000_999))
    assert again == stored
    assert await rows() == before
    # a later reading still bills from the one stored
    later = await store(sessions, minute(2), values(1_000_400))
    assert later.previous_billable == (minute(1), 1_000_250)


async def test_a_counter_going_backwards_bills_nothing_until_it_passes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await store(sessions, T0, values(1_000_000))
    back = await store(sessions, minute(1), values(400))
    assert back.flags == ("counter_backwards",) and not back.billable
    assert back.previous_billable == (T0, 1_000_000)
    still = await store(sessions, minute(2), values(999_999))
    assert not still.billable
    assert await state_flags(sessions) == ["counter_backwards"]
    passed = await store(sessions, minute(3), values(1_000_100))
    assert passed.billable and passed.flags == ()
    assert passed.previous_billable == (T0, 1_000_000)  # bills 100 Wh, not 999,700
    assert await state_flags(sessions) == []


async def test_gap_nan_and_jump(sessions: async_sessionmaker[AsyncSession]) -> None:
    await store(sessions, T0, values(1_000_000))
    # ten minutes without a reading: flagged, still billed
    gap = await store(sessions, minute(10), values(1_001_000))
    assert gap.flags == ("gap",) and gap.billable
    assert await state_flags(sessions) == ["gap"]
    # NaN in the energy register: stored without a number, not billed
    nan = await store(sessions, minute(11), values(None, None))
    assert nan.flags == ("not_a_number", "power_unreadable") and not nan.billable
    assert nan.energy_wh is None and nan.power_w is None
    # a jump no supply can carry in a minute
    jump = await store(sessions, minute(12), values(9_000_000))
    assert jump.flags == ("absurd_jump",) and not jump.billable
    assert await state_flags(sessions) == ["absurd_jump", "not_a_number", "gap",
                                           "power_unreadable"]
    # the next plausible reading bills the whole span from the last billable one
    good = await store(sessions, minute(13), values(1_001_600))
    assert good.billable and good.previous_billable == (minute(10), 1_001_000)
    assert await state_flags(sessions) == []
    async with sessions() as db:
        stored = await readings(db, "m-1", limit=10)
        assert [(r.at, r.energy_import_wh, r.billable) for r in stored] == [
            (minute(13), 1_001_600, True), (minute(12), 9_000_000, False),
            (minute(11), None, False), (minute(10), 1_001_000, True), (T0, 1_000_000, True),
        ]
        page = await readings(db, "m-1", limit=2, before=minute(12))
        assert [r.at for r in page] == [minute(11), minute(10)]


async def test_garbage_and_huge_power_are_not_numbers_in_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await store(sessions, T0, values(1_000_000))
    garbage = await store(sessions, minute(1), values(2**70, "1e30"))
    assert garbage.flags == ("out_of_range", "power_unreadable") and not garbage.billable
    async with sessions() as db:
        [row] = await readings(db, "m-1", limit=1)
        assert row.energy_import_wh is None and row.power_w is None


async def test_an_exchange_continues_billing(sessions: async_sessionmaker[AsyncSession]) -> None:
    await store(sessions, T0, values(5_000_000))
    await store(sessions, minute(1), values(5_000_200))
    # the installer swaps the meter at minute 1.5: the old one ended at 5,000,300 Wh, the new
    # one starts at 12 Wh; until that is recorded the new register reads backwards
    new_meter = await store(sessions, minute(2), values(40))
    assert new_meter.flags == ("counter_backwards",) and not new_meter.billable
    async with sessions() as db:
        exchange = await record_exchange(db, "m-1", minute(1.5), 5_000_300, 12, "installer:t1",
                                         now=minute(2.5))
        await db.commit()
    assert exchange.id is not None and exchange.recorded_at == minute(2.5)
    assert await state_flags(sessions) == []
    after = await store(sessions, minute(3), values(240))
    # billed register: 240 + (5,000,300 - 12) = 5,000,528; the interval from the last billable
    # reading holds the old meter's last 100 Wh and the new one's 228 Wh
    assert after.billable and after.flags == ()
    assert after.energy_wh == 5_000_528
    assert after.previous_billable == (minute(1), 5_000_200)
    async with sessions() as db:
        [row] = await readings(db, "m-1", limit=1)
        assert (row.energy_import_wh, row.offset_wh) == (240, 5_000_288)  # as the meter shows
        # a second exchange adds to the offset
        await record_exchange(db, "m-1", minute(3.5), 300, 0, "installer:t1", now=minute(4))
        await db.commit()
    again = await store(sessions, minute(4), values(100))
    assert again.energy_wh == 100 + 5_000_288 + 300
    assert again.previous_billable == (minute(3), 5_000_528)
    # storing the reading of minute 3 again gives what was stored then
    assert (await store(sessions, minute(3), values(240))) == after


async def test_an_exchange_with_problems_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await store(sessions, T0, values(5_000_000))
    await store(sessions, minute(1), values(5_000_200))
    async with sessions() as db:
        with pytest.raises(ExchangeError) as caught:
            await record_exchange(db, "m-1", minute(0.5), -1, 10**16, " ", now=minute(2))
    assert dict(caught.value.problems) == {
        "old_final_wh": "must be 0..1000000000000000 Wh, not -1",
        "new_initial_wh": "must be 0..1000000000000000 Wh, not 10000000000000000",
        "recorded_by": "required: who records the exchange",
        "at": "is before the last billed reading at 2026-12-02T12:01:00+00:00: an exchange "
              "ends the readings before it",
    }
    async with sessions() as db:
        with pytest.raises(ExchangeError) as caught:
            await record_exchange(db, "m-1", minute(5), 5_000_100, 0, "i", now=minute(2))
        assert caught.value.problems == (
            ("at", "2026-12-02T12:05:00+00:00 is in the future"),
            ("old_final_wh", "5000100 Wh is below the old meter's last billed reading, "
                             "5000200 Wh"),
        )
        with pytest.raises(ExchangeError, match="meter_id: unknown meter 'm-9'"):
            await record_exchange(db, "m-9", minute(1), 1, 0, "i", now=minute(2))
        with pytest.raises(ExchangeError, match="at: must be a time with its time zone"):
            await record_exchange(db, "m-1", datetime(2026, 12, 2, 12, 2), 5_000_300, 0, "i",
                                  now=minute(2))
        state = await meter_state(db, "m-1", lock=False)
        assert state.offset_wh == 0 and state.exchanged_at is None
        await record_exchange(db, "m-1", minute(1.5), 5_000_300, 0, "i", now=minute(2))
        with pytest.raises(ExchangeError, match="at: must be after the previous exchange"):
            await record_exchange(db, "m-1", minute(1.5), 10, 0, "i", now=minute(2))


async def test_failures_and_supply_are_standing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db:
        await record_failure(db, "m-1", "no answer within 2 s", minute(1))
        state = await record_failure(db, "m-1", "backed off", minute(2))
        assert (state.failures, state.backed_off_until) == (2, minute(2))
        state = await set_supply(db, "m-1", "off", minute(3))
        assert (state.supply, state.supply_changed_at) == ("off", minute(3))
        state = await set_supply(db, "m-1", "off", minute(4))
        assert state.supply_changed_at == minute(3)  # no change, no new time
        with pytest.raises(ValueError, match="supply must be one of on, off, fault"):
            await set_supply(db, "m-1", "broken", minute(4))  # type: ignore[arg-type]
        await db.commit()
    await store(sessions, minute(5), values(1_000))
    async with sessions() as db:
        state = await meter_state(db, "m-1", lock=False)
        assert (state.failures, state.backed_off_until, state.last_failure) == (0, None, None)
        assert state.supply == "off"


async def test_a_naive_time_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ValueError, match="carries no time zone"):
        await store(sessions, datetime(2026, 12, 2, 12, 0), values(1))
    async with sessions() as db:
        assert await readings(db, "m-1") == []
        assert await db.get(MeterReading, 1) is None
