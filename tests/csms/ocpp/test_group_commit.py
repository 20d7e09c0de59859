"""Group commit: rows of many callers in one executemany, and one bad caller harms no other."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from csms.ocpp.group_commit import GroupCommit, Operation, write_with_batch
from csms.ocpp.models import SecurityEvent, StatusEvent
from csms.ocpp.rows import StationRows
from tests.csms.ocpp.conftest import add_site, add_station


def _status(station_id: str, number: int) -> dict[str, object]:
    return {
        "station_id": station_id, "evse_id": 1, "connector_id": 1,
        "status": f"S{number}", "error_code": None, "info": None,
        "timestamp": None, "received_at": datetime.now(UTC),
    }


async def test_rows_of_many_callers_share_one_transaction(engine: AsyncEngine) -> None:
    await add_site(engine)
    await add_station(engine, "WB-1")
    rows = StationRows.for_dialect(engine.dialect.name)
    group = GroupCommit(session_factory(engine), workers=1)
    await asyncio.gather(
        *(group.write(rows.status_event, _status("WB-1", n)) for n in range(300)),
        *(group.write(rows.status_current, _status("WB-1", n)) for n in range(300)),
    )
    # 600 rows, at most 256 per batch: three transactions, not 600.
    assert group.batches <= 3
    async with session_factory(engine)() as session:
        events = (await session.exec(select(StatusEvent))).all()
        assert sorted(e.status for e in events) == sorted(f"S{n}" for n in range(300))


async def test_a_failing_caller_fails_alone(engine: AsyncEngine) -> None:
    await add_site(engine)
    rows = StationRows.for_dialect(engine.dialect.name)
    group = GroupCommit(session_factory(engine), workers=1)

    async def broken(session: object) -> None:
        raise ValueError("this operation is broken")

    event = {
        "station_id": "WB-9", "source": "csms", "type": "Test", "tech_info": None,
        "timestamp": None, "received_at": datetime.now(UTC),
    }
    # status_current has a NOT NULL status: this row cannot be written.
    bad_row = dict(_status("WB-9", 0), status=None)
    results = await asyncio.gather(
        group.write(rows.security_event, event),
        group.run(broken),
        group.write(rows.status_current, bad_row),
        group.write(rows.security_event, dict(event, type="Second")),
        return_exceptions=True,
    )
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], IntegrityError)
    async with session_factory(engine)() as session:
        kept = (await session.exec(select(SecurityEvent.type))).all()
    assert sorted(kept) == ["Second", "Test"]


async def test_rows_operations_write_with_their_batch_go_in_one_statement(
    engine: AsyncEngine,
) -> None:
    await add_site(engine)
    await add_station(engine, "WB-1")
    rows = StationRows.for_dialect(engine.dialect.name)
    group = GroupCommit(session_factory(engine), workers=1, window_s=0.2)
    inserts: list[bool] = []

    def seen(_conn: object, _cursor: object, statement: str, _params: object, _context: object,
             executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OCPP_STATUS_EVENT"):
            inserts.append(executemany)

    def operation(number: int, row: dict[str, object]) -> Operation:
        async def run(session: AsyncSession) -> int:
            await write_with_batch(session, rows.status_event, [row])
            return number
        return run

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        results = await asyncio.gather(
            *(group.run(operation(n, _status("WB-1", n))) for n in range(20)),
            *(group.write(rows.status_event, _status("WB-1", 100 + n)) for n in range(5)),
        )
        assert results[:20] == list(range(20))
        # 25 rows of 20 operations and 5 writers: one transaction, one statement.
        assert group.batches == 1 and len(inserts) == 1
        # An operation whose row cannot be written fails alone; the others' rows are kept.
        outcome = await asyncio.gather(
            group.run(operation(1, _status("WB-1", 201))),
            group.run(operation(2, dict(_status("WB-1", 202), status=None))),
            group.run(operation(3, _status("WB-1", 203))),
            return_exceptions=True,
        )
        assert outcome[0] == 1 and outcome[2] == 3 and isinstance(outcome[1], IntegrityError)
        # A session no batch runs writes its rows at once.
        async with session_factory(engine)() as session:
            await write_with_batch(session, rows.status_event, [_status("WB-1", 300)])
            await session.commit()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    async with session_factory(engine)() as session:
        stored = (await session.exec(select(StatusEvent.status))).all()
    assert sorted(stored) == sorted(
        [f"S{n}" for n in (*range(20), *range(100, 105))] + ["S201", "S203", "S300"]
    )


async def _spaced_writes(group: GroupCommit, rows: StationRows, count: int) -> None:
    """`count` status rows from callers arriving 5 ms apart, as stations' messages do."""

    async def one(number: int) -> None:
        await asyncio.sleep(0.005 * number)
        await group.write(rows.status_event, _status("WB-1", number))

    await asyncio.gather(*(one(n) for n in range(count)))


async def test_callers_within_the_window_share_one_commit(engine: AsyncEngine) -> None:
    await add_site(engine)
    await add_station(engine, "WB-1")
    rows = StationRows.for_dialect(engine.dialect.name)
    # Arrivals over 20 ms, a window of 500 ms: one transaction, also with several transactions
    # allowed at once (as the station service has): they do not split the window's callers.
    for workers in (1, 8):
        gathered = GroupCommit(session_factory(engine), workers=workers, window_s=0.5)
        await _spaced_writes(gathered, rows, 5)
        assert (gathered.batches, gathered.operations, gathered.windows) == (1, 5, 1)
    # Without a window the first caller's transaction starts at once.
    at_once = GroupCommit(session_factory(engine), workers=1)
    await _spaced_writes(at_once, rows, 5)
    assert at_once.batches >= 2
    async with session_factory(engine)() as session:
        events = (await session.exec(select(StatusEvent))).all()
        assert len(events) == 15


async def test_a_lone_caller_is_not_kept_waiting_window_after_window(engine: AsyncEngine) -> None:
    await add_site(engine)
    await add_station(engine, "WB-1")
    rows = StationRows.for_dialect(engine.dialect.name)
    group = GroupCommit(session_factory(engine), workers=1, window_s=0.05)
    # One caller, one write after the other: nobody ever joins a window.
    for number in range(100):
        await group.write(rows.status_event, _status("WB-1", number))
    assert group.batches == 100
    # Windows after 1, 2, 4, ... 64 batches started at once: 7 or 8 of them, not 100.
    assert group.windows <= 8


async def test_a_full_batch_does_not_wait_a_window(engine: AsyncEngine) -> None:
    await add_site(engine)
    await add_station(engine, "WB-1")
    rows = StationRows.for_dialect(engine.dialect.name)
    group = GroupCommit(session_factory(engine), workers=1, window_s=0.5)
    # 300 rows at once (a boot storm): a full batch of 256 starts without a window; only the
    # 44 left wait for one, while that batch runs.
    await asyncio.gather(*(group.write(rows.status_event, _status("WB-1", n)) for n in range(300)))
    assert (group.batches, group.operations, group.windows) == (2, 300, 1)


async def test_a_long_batch_lets_other_work_through_and_a_short_one_runs_through(
    engine: AsyncEngine,
) -> None:
    """A batch's operations run back to back in the loop's thread: one that has run for a few
    milliseconds lets the stations' frames through, but quick operations are not interrupted
    (every interruption is a turn of a busy loop that the whole batch waits for)."""
    group = GroupCommit(session_factory(engine), workers=1)
    ran_during: list[int] = []
    done = 0

    def operation(busy_s: float) -> Operation:
        async def op(session: AsyncSession) -> None:
            nonlocal done
            until = time.perf_counter() + busy_s
            while time.perf_counter() < until:
                pass
            done += 1
        return op

    async def other_work() -> None:
        # Scheduled once per turn of the loop while the batch runs.
        while True:
            ran_during.append(done)
            await asyncio.sleep(0)

    async def count_turns(busy_s: float, ops: int) -> set[int]:
        nonlocal done
        done = 0
        ran_during.clear()
        watcher = asyncio.create_task(other_work())
        await asyncio.gather(*(group.run(operation(busy_s)) for _ in range(ops)))
        watcher.cancel()
        return {count for count in ran_during if 0 < count < ops}

    # 40 operations of 1 ms each: the other work ran in between, several times.
    assert len(await count_turns(0.001, 40)) >= 3
    # 40 quick ones (well under the few milliseconds): the batch ran through.
    assert await count_turns(0.0, 40) == set()
