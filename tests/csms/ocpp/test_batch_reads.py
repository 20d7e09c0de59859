"""Reads made once per batch (`BatchRead`): the loader runs once with every key of the batch,
its answers are those each message's own read gives, and on SQLite and PostgreSQL the messages
of many stations in one batch read the badges, their transactions and reservations in one
statement each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.db.engine import session_factory
from csms.ocpp.connection import Limits
from csms.ocpp.events import IdToken, StationRef
from csms.ocpp.group_commit import KEYS_STEP, BatchRead, GroupCommit, padded
from csms.ocpp.models import MeterValue, Transaction, TransactionMessage
from csms.ocpp.reservation_book import ReservationRow
from csms.ocpp.server import ServerOptions
from csms.simulator.station import Session
from rfid.registry import look_up_ahead, lookup
from rfid.uid import UidError
from tests.csms.ocpp.conftest import (
    Node,
    add_badge,
    add_site,
    add_station,
    start_node,
    statements,
    stop_node,
    utc_now,
)


async def test_a_batch_reads_once_with_every_key_its_operations_named(
    sqlite_engine: AsyncEngine,
) -> None:
    group = GroupCommit(session_factory(sqlite_engine), workers=1, window_s=0.2)
    loads: list[list[Any]] = []

    async def load(session: AsyncSession, keys: list[Any]) -> None:
        loads.append(keys)
        session.info["answers"] = {key: key * 10 for key in keys}

    def operation(key: int) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def run(session: AsyncSession) -> Any:
            return session.info.get("answers", {}).get(key)
        return run

    results = await asyncio.gather(
        *(group.run(operation(key), (BatchRead(load, key),)) for key in (3, 1, 3, 2)))
    assert results == [30, 10, 30, 20]
    # One call, each key once, in the order first named, padded with the last to KEYS_STEP
    # (an IN list of a few lengths only).
    assert loads == [[3, 1] + [2] * (KEYS_STEP - 2)]
    # An operation alone in its batch reads for itself: nothing is read ahead.
    assert await group.run(operation(4), (BatchRead(load, 4),)) is None
    assert len(loads) == 1


def test_keys_are_padded_to_a_multiple_of_the_step() -> None:
    assert padded([1, 2, 3], 4) == [1, 2, 3, 3]
    assert padded([1, 2, 3, 4], 4) == [1, 2, 3, 4]
    assert padded(list(range(5)), 4) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert padded([], 4) == []


def _found(answer: Any) -> Any:
    if answer is None:
        return None
    return answer.badge.site_id, answer.badge.uid, answer.match.fmt, answer.match.format_mismatch


async def test_badges_looked_up_ahead_are_those_lookup_finds(engine: AsyncEngine) -> None:
    await add_site(engine, "s1")
    await add_site(engine, "s2")
    await add_badge(engine, "04A2B3C4", "a-01", site_id="s1")
    await add_badge(engine, "DEADBEEF", "a-01", site_id="s1")
    await add_badge(engine, "04112233445566", "a-01", site_id="s1")
    await add_badge(engine, "04A2B3C4", "b-01", site_id="s2")
    questions = [
        ("04A2B3C4", "hex", "s1"),
        ("04a2b3c4", "hex", "s2"),  # the same UID, on the other site: that site's badge
        (str(0xDEADBEEF), "hex", "s1"),  # sent in decimal by a station set to hex
        ("04112233", "hex", "s1"),  # a 7-byte UID cut to 4 bytes
        ("FFFFFFFF", "hex", "s1"),  # nobody's
        ("DEADBEEF", "hex", "s2"),  # another site's badge only
        ("not a uid", "hex", "s1"),
    ]
    async with session_factory(engine)() as alone:
        expected = [_found(await lookup(alone, tag, fmt, site_id=site))
                    for tag, fmt, site in questions]
    assert expected[0] == ("s1", "04A2B3C4", "hex", False)
    assert expected[1] == ("s2", "04A2B3C4", "hex", False)
    assert expected[2] == ("s1", "DEADBEEF", "dec", True)
    assert expected[3] == ("s1", "04112233445566", "hex", False)
    assert expected[4:] == [None, None, None]
    async with session_factory(engine)() as session:
        with statements(engine) as sent:
            await look_up_ahead(session, [*questions, ("04A2B3C4", "no-such-format", "s1")])
            found = [_found(await lookup(session, tag, fmt, site_id=site))
                     for tag, fmt, site in questions]
        assert found == expected
        assert _count(sent, "SELECT") == 1 and _count(sent, "FROM BADGE") == 1
        # A question it could not answer is left for lookup, which refuses it as before.
        with pytest.raises(UidError):
            await lookup(session, "04A2B3C4", "no-such-format", site_id="s1")


# A fleet on one node whose messages are held behind busy transactions, so that each round of
# messages below forms one batch.
STATIONS = ("WB-1", "WB-2", "WB-3", "WB-4")
BADGE, STRANGER = "04A2B3C4", "0499887766"


@pytest.fixture
async def quiet(engine: AsyncEngine) -> AsyncIterator[Node]:
    """A node on each backend that sends nothing of its own after a boot."""
    await add_site(engine)
    for station_id in STATIONS:
        await add_station(engine, station_id)
    await add_badge(engine, BADGE)
    options = ServerOptions(port=0, read_configuration=False, set_clock=False, local_lists=False,
                            limits=Limits(call_timeout_s=10))
    running = await start_node(engine, options=options)
    yield running
    await stop_node(running)


async def one_batch(node: Node, messages: list[Awaitable[Any]]) -> list[Any]:
    """Send `messages` while every transaction of the node is held, so they queue and then
    run in one batch."""
    release = asyncio.Event()

    async def hold(_session: AsyncSession) -> None:
        await release.wait()

    # One per transaction the node runs at once (two on PostgreSQL), each in a batch of its own.
    holders = []
    for _ in range(2):
        holders.append(asyncio.ensure_future(node.server.service.batched(hold)))
        await asyncio.sleep(0.1)
    sent = asyncio.ensure_future(asyncio.gather(*messages))
    await asyncio.sleep(0.5)
    release.set()
    await asyncio.gather(*holders)
    return list(await sent)


async def test_a_batch_of_stations_reads_ahead_what_each_would_read(quiet: Node) -> None:
    engine = quiet.engine
    async with session_factory(engine)() as db:
        # Somebody else holds every connector of WB-3.
        for connector in range(1, 5):
            db.add(ReservationRow(
                station_id="WB-3", protocol="ocpp1.6", connector_id=connector,
                id_tag="0411111111", expires_at=utc_now() + timedelta(hours=1),
                answer="Accepted", created_at=utc_now()))
        await db.commit()
    stations = [quiet.station(station_id) for station_id in STATIONS]
    for station in stations:
        await station.connect()
    try:
        for station in stations:
            assert await station.boot() == "Accepted"
        tags = [BADGE, BADGE, BADGE, STRANGER]
        with statements(engine) as sent:
            answers = await one_batch(quiet, [
                station.authorize(tag) for station, tag in zip(stations, tags, strict=True)])
        assert answers == ["Accepted", "Accepted", "Blocked", "Invalid"]
        assert _count(sent, "FROM BADGE") == 1

        with statements(engine) as sent:
            sessions = await one_batch(quiet, [
                station.start(tag) for station, tag in zip(stations, tags, strict=True)])
        assert _count(sent, "FROM BADGE") == 1
        # The retransmission check of all four starts.
        assert _count(sent, "SELECT OCPP_TRANSACTION.STATION_ID, OCPP_TRANSACTION.START_KEY") == 1
        if engine.dialect.name == "postgresql":
            # Their ids came with that check: the four rows went in as one executemany, with
            # no update of their transaction ids.
            assert _count(sent, "INSERT INTO OCPP_TRANSACTION (") == 1
            assert _count(sent, "UPDATE OCPP_TRANSACTION") == 0

        for station in stations:
            station.energy_wh += 1000
        unknown = Session("999", 1, BADGE, 0)
        with statements(engine) as sent:
            await one_batch(quiet, [
                *(station.meter(session, 11000, 0) for station, session in
                  zip(stations[:3], sessions[:3], strict=True)),
                stations[3].meter(unknown, 11000, 0),
            ])
        # Four transactions read in one select, three readings set in one executemany.
        assert _count(sent, "FROM OCPP_TRANSACTION") == 1
        assert _count(sent, "UPDATE OCPP_TRANSACTION") == 1

        with statements(engine) as sent:
            await one_batch(quiet, [station.stop(session) for station, session in
                                    zip(stations[:2], sessions[:2], strict=True)])
        assert _count(sent, "FROM BADGE") == 1
        # Both transactions read in one select, both ended in one executemany.
        assert _count(sent, "FROM OCPP_TRANSACTION") == 1
        assert _count(sent, "UPDATE OCPP_TRANSACTION") == 1
    finally:
        for station in stations:
            await station.close()
    async with session_factory(engine)() as db:
        rows = {row.station_id: row for row in
                (await db.exec(select(Transaction).order_by(col(Transaction.id)))).all()}
        readings = (await db.exec(
            select(MeterValue.station_id, MeterValue.transaction_id)
            .where(col(MeterValue.measurand) == "Energy.Active.Import.Register")
            .where(col(MeterValue.value) == "1000")
        )).all()
    assert set(rows) == set(STATIONS)
    assert [rows[s].last_meter_wh for s in STATIONS[:3]] == [1000, 1000, 1000]
    assert [rows[s].ended for s in STATIONS] == [True, True, False, False]
    assert rows["WB-4"].last_meter_wh == 0  # its reading named a transaction we do not know
    assert sorted(readings) == [("WB-1", rows["WB-1"].id), ("WB-2", rows["WB-2"].id),
                                ("WB-3", rows["WB-3"].id), ("WB-4", None)]


def _count(sent: list[str], fragment: str) -> int:
    return sum(fragment in statement for statement in sent)


async def test_a_batch_writes_new_starts_before_what_names_them_and_each_copy_once(
    quiet: Node,
) -> None:
    """A stop ahead of two new starts in one batch: the starts' rows go in before the stored
    messages that name them (on PostgreSQL they are written with the batch); a start and a
    stop sent twice in the same batch (a retransmission) are written once."""
    engine = quiet.engine
    service = quiet.server.service
    ref_1, ref_2, ref_3 = (StationRef(station_id, "s1", "ocpp1.6", "hex", None, 2)
                           for station_id in STATIONS[:3])
    now = utc_now()
    start: dict[str, Any] = dict(
        connector_id=1, token=IdToken(BADGE), meter_start_wh=0, timestamp=now,
        reservation_id=None, payload={})
    first, _ = await service.transactions.start_transaction(ref_1, **start)
    stop: dict[str, Any] = dict(
        transaction_id=first, token=None, meter_stop_wh=500, timestamp=now, reason="Local",
        readings=(), payload={})
    with statements(engine) as sent:
        answers = await one_batch(quiet, [
            service.transactions.stop_transaction(ref_1, **stop),
            service.transactions.start_transaction(ref_2, **start),
            service.transactions.start_transaction(ref_3, **start),
            service.transactions.start_transaction(ref_3, **start),
            service.transactions.stop_transaction(ref_1, **stop),
        ])
    (started_2, _), (started_3, _), (again_3, _) = answers[1:4]
    assert again_3 == started_3 and started_2 != started_3
    if engine.dialect.name == "postgresql":
        # Written with the batch (had it failed, its messages run alone would each have
        # inserted their row and set its transaction id).
        assert _count(sent, "INSERT INTO OCPP_TRANSACTION (") == 1
        assert _count(sent, "UPDATE OCPP_TRANSACTION SET STATION_TX_ID") == 0
    else:
        assert _count(sent, "INSERT INTO OCPP_TRANSACTION (") == 2
    # The stored messages of all of them in one executemany: the batch did not fail.
    assert _count(sent, "INSERT INTO OCPP_TRANSACTION_MESSAGE") == 1
    async with session_factory(engine)() as db:
        rows = (await db.exec(select(Transaction).order_by(col(Transaction.id)))).all()
        messages = (await db.exec(
            select(TransactionMessage.transaction_id, TransactionMessage.action))).all()
    assert [(row.id, row.station_tx_id, row.ended) for row in rows] == [
        (first, str(first), True),
        (started_2, str(started_2), False),
        (started_3, str(started_3), False),
    ]
    assert rows[0].meter_stop_wh == 500
    assert sorted(messages) == sorted([
        (first, "StartTransaction"), (first, "StopTransaction"),
        (started_2, "StartTransaction"), (started_3, "StartTransaction"),
    ])
