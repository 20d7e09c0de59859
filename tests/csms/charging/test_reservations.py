"""Reservations on the wire, both versions, with billing plugged in: the operator's ReserveNow
reaches the station; on the reserved connector only the badge and its household are accepted,
until the reservation expires, is cancelled, or is used by a start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import session_factory
from csms.ocpp.admin import get_station
from csms.ocpp.commands import StationGateway
from csms.ocpp.reservation_book import (
    ReservationNotOpen,
    ReservationRow,
    cancel,
    reservation_json,
    reserve,
)
from tests.csms.charging.conftest import Box, Rig, close_rig, demo_document, make_rig, stamp

A = "04A2B3C4"  # Keller 1 (a-01)
HOUSEHOLD = "04A2B3C5"  # Keller 2 (a-01)
B = "8A1F2C3D"  # Yilmaz (a-02)
STATIONS = {"ocpp1.6": "WB-A-01", "ocpp2.0.1": "WB-B-01"}
REFUSED = {"ocpp1.6": "Blocked", "ocpp2.0.1": "NotAtThisTime"}
PROTOCOLS = pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])


async def reserve_for(
    rig: Rig, station_id: str, badge: str, *, connector: int = 1, minutes: int = 30
) -> ReservationRow:
    """What the API and the CLI do for an operator."""
    async with session_factory(rig.engine)() as db:
        station = await get_station(db, station_id)
    now = rig.clock()
    return await reserve(
        session_factory(rig.engine), StationGateway(rig.bus), station, connector=connector,
        badge_uid=badge, expires_at=now + timedelta(minutes=minutes), now=now,
    )


async def stored(rig: Rig, reservation_id: int | None) -> dict[str, Any]:
    async with session_factory(rig.engine)() as db:
        row = await db.get(ReservationRow, reservation_id)
        assert row is not None
        return reservation_json(row, rig.clock())


class Starts:
    """Transactions started the way each version does, with the server's clock as timestamp."""

    def __init__(self, box: Box, protocol: str) -> None:
        self.box = box
        self.protocol = protocol
        self.seq = 0

    async def start(
        self, tag: str, *, connector: int = 1, reservation_id: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The transaction id and the idTagInfo / idTokenInfo answered."""
        at = stamp(self.box.clock())
        if self.protocol == "ocpp1.6":
            reply = await self.box.call(call16.StartTransaction(
                connector_id=connector, id_tag=tag, meter_start=1000, timestamp=at,
                reservation_id=reservation_id))
            return str(reply.transaction_id), reply.id_tag_info
        self.seq += 1
        tx = f"tx-{self.seq}"
        reply = await self.box.call(call201.TransactionEvent(
            event_type="Started", timestamp=at, trigger_reason="Authorized", seq_no=0,
            transaction_info={"transaction_id": tx, "charging_state": "Charging"},
            evse={"id": connector, "connector_id": 1},
            id_token={"id_token": tag, "type": "ISO14443"}, reservation_id=reservation_id,
            meter_value=[{"timestamp": at, "sampled_value": [
                {"value": 1000, "measurand": "Energy.Active.Import.Register",
                 "context": "Transaction.Begin", "unit_of_measure": {"unit": "Wh"}}]}]))
        return tx, reply.id_token_info

    async def stop(self, tx: str) -> None:
        at = stamp(self.box.clock())
        if self.protocol == "ocpp1.6":
            await self.box.call(call16.StopTransaction(
                meter_stop=1000, timestamp=at, transaction_id=int(tx), reason="DeAuthorized"))
            return
        await self.box.call(call201.TransactionEvent(
            event_type="Ended", timestamp=at, trigger_reason="Deauthorized", seq_no=1,
            transaction_info={"transaction_id": tx, "stopped_reason": "DeAuthorized"},
            meter_value=[{"timestamp": at, "sampled_value": [
                {"value": 1000, "measurand": "Energy.Active.Import.Register",
                 "context": "Transaction.End", "unit_of_measure": {"unit": "Wh"}}]}]))


async def rig_with(engine: AsyncEngine, connectors: int) -> AsyncIterator[Rig]:
    document = demo_document()
    for station in document["stations"]:
        station["connectors"] = connectors
    running = await make_rig(engine, document=document)
    yield running
    await close_rig(running)


@pytest.fixture
async def lite(sqlite_engine: AsyncEngine) -> AsyncIterator[Rig]:
    """Both demo stations with one connector: a reservation holds the whole station."""
    async for running in rig_with(sqlite_engine, 1):
        yield running


@pytest.fixture
async def two_connectors(sqlite_engine: AsyncEngine) -> AsyncIterator[Rig]:
    async for running in rig_with(sqlite_engine, 2):
        yield running


def expiry_of(info: dict[str, Any], protocol: str) -> datetime:
    text = info["expiry_date" if protocol == "ocpp1.6" else "cache_expiry_date_time"]
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@PROTOCOLS
async def test_reserved_connector_takes_the_badge_and_its_household_until_expiry(
    lite: Rig, protocol: str
) -> None:
    station_id = STATIONS[protocol]
    box = await lite.box(station_id)
    lite.clock.at(0)
    row = await reserve_for(lite, station_id, A)
    assert row.answer == "Accepted"
    sent = box.received("ReserveNow")[-1]
    expiry = stamp(lite.clock() + timedelta(minutes=30))
    if protocol == "ocpp1.6":
        assert sent == {"reservation_id": row.id, "connector_id": 1, "expiry_date": expiry,
                        "id_tag": A, "parent_id_tag": "a-01"}
    else:
        assert sent == {"id": row.id, "expiry_date_time": expiry, "evse_id": 1,
                        "id_token": {"id_token": A, "type": "ISO14443"},
                        "group_id_token": {"id_token": "a-01", "type": "Central"}}
    assert box.memory.reservations.keys() == {row.id}

    assert await box.sim.authorize(B) == REFUSED[protocol]
    assert await box.sim.authorize(A) == "Accepted"
    assert await box.sim.authorize(HOUSEHOLD) == "Accepted"

    # A station that lets B start all the same (billing would accept B: a-02 has credit).
    starts = Starts(box, protocol)
    lite.clock.at(1)
    tx, info = await starts.start(B)
    assert info["status"] == REFUSED[protocol]
    # Cached refusals run out with the reservation.
    assert expiry_of(info, protocol) == row.expires_at
    await starts.stop(tx)
    assert (await stored(lite, row.id))["state"] == "active"

    lite.clock.at(30)  # the reservation's expiry
    assert await box.sim.authorize(B) == "Accepted"
    assert (await stored(lite, row.id))["state"] == "expired"


@PROTOCOLS
async def test_cancel_frees_the_connector(lite: Rig, protocol: str) -> None:
    station_id = STATIONS[protocol]
    box = await lite.box(station_id)
    lite.clock.at(0)
    row = await reserve_for(lite, station_id, A)
    assert await box.sim.authorize(B) == REFUSED[protocol]
    sessions, gateway = session_factory(lite.engine), StationGateway(lite.bus)
    cancelled, answer = await cancel(sessions, gateway, station_id, row.id or 0, now=lite.clock())
    assert answer == "Accepted"
    assert box.received("CancelReservation")[-1] == {"reservation_id": row.id}
    assert box.memory.reservations == {}
    assert reservation_json(cancelled, lite.clock())["state"] == "cancelled"
    assert await box.sim.authorize(B) == "Accepted"
    with pytest.raises(ReservationNotOpen, match="is cancelled"):
        await cancel(sessions, gateway, station_id, row.id or 0, now=lite.clock())


@PROTOCOLS
async def test_a_start_with_the_reservation_id_uses_it(lite: Rig, protocol: str) -> None:
    station_id = STATIONS[protocol]
    box = await lite.box(station_id)
    lite.clock.at(0)
    row = await reserve_for(lite, station_id, A)
    starts = Starts(box, protocol)
    lite.clock.at(5)
    tx, info = await starts.start(HOUSEHOLD, reservation_id=row.id)
    assert info["status"] == "Accepted"
    used = await stored(lite, row.id)
    assert used["state"] == "used"
    assert used["transaction_id"] is not None
    assert used["ended_at"] == lite.clock().isoformat()
    # Used up: it holds nothing for anybody any more.
    assert await box.sim.authorize(B) == "Accepted"
    await starts.stop(tx)


async def test_the_holder_starting_without_the_id_uses_it_too(lite: Rig) -> None:
    box = await lite.box("WB-A-01")
    lite.clock.at(0)
    row = await reserve_for(lite, "WB-A-01", A)
    starts = Starts(box, "ocpp1.6")
    tx, info = await starts.start(A)
    assert info["status"] == "Accepted"
    assert (await stored(lite, row.id))["state"] == "used"
    await starts.stop(tx)


async def test_station_reports_end_its_reservations(lite: Rig) -> None:
    box = await lite.box("WB-B-01")
    lite.clock.at(0)
    removed = await reserve_for(lite, "WB-B-01", A)
    await box.sim.reservation_ended(removed.id or 0, "Removed")
    assert (await stored(lite, removed.id))["state"] == "removed"
    assert await box.sim.authorize(B) == "Accepted"
    expired = await reserve_for(lite, "WB-B-01", A)
    await box.sim.reservation_ended(expired.id or 0, "Expired")
    assert (await stored(lite, expired.id))["state"] == "expired"
    assert await box.sim.authorize(B) == "Accepted"


@PROTOCOLS
async def test_a_reservation_the_station_refused_holds_nothing(lite: Rig, protocol: str) -> None:
    station_id = STATIONS[protocol]
    box = await lite.box(station_id)
    lite.clock.at(0)
    box.memory.reserve_answer = "Occupied"
    row = await reserve_for(lite, station_id, A)
    assert row.answer == "Occupied"
    assert (await stored(lite, row.id))["state"] == "refused"
    assert await box.sim.authorize(B) == "Accepted"


@PROTOCOLS
async def test_other_connectors_stay_free(two_connectors: Rig, protocol: str) -> None:
    rig = two_connectors
    station_id = STATIONS[protocol]
    box = await rig.box(station_id)
    rig.clock.at(0)
    await reserve_for(rig, station_id, A, connector=1)
    # Authorize names no connector: B may still charge on connector 2.
    assert await box.sim.authorize(B) == "Accepted"
    starts = Starts(box, protocol)
    tx, info = await starts.start(B, connector=1)
    assert info["status"] == REFUSED[protocol]
    await starts.stop(tx)
    tx, info = await starts.start(B, connector=2)
    assert info["status"] == "Accepted"
    await starts.stop(tx)
