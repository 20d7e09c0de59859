"""1.6 StopTransaction without billing, on SQLite and PostgreSQL: a stop ends its transaction
once, and a stop naming a transaction we never saw is kept rather than lost."""

from __future__ import annotations

from sqlmodel import col, select

from csms.db.engine import session_factory
from csms.ocpp.models import Transaction, TransactionMessage
from csms.simulator.station import Session
from tests.csms.ocpp.conftest import Node, add_badge, add_station


async def test_a_stop_ends_its_transaction_once_and_an_unknown_one_is_kept(node: Node) -> None:
    await add_station(node.engine, "WB-1")
    await add_badge(node.engine)
    async with node.station("WB-1") as station:
        assert await station.boot() == "Accepted"
        session = await station.start("04A2B3C4")
        station.energy_wh = 2500
        await station.stop(session, reason="EVDisconnected")
        # A retransmission: answered, and nothing ends twice.
        station.energy_wh = 2600
        await station.stop(session, reason="EVDisconnected")
        # A transaction started while we were unreachable.
        await station.stop(Session("777", 1, "04A2B3C4", 0), reason="PowerLoss")
    async with session_factory(node.engine)() as db:
        ours, unknown = (await db.exec(select(Transaction).order_by(col(Transaction.id)))).all()
        messages = (await db.exec(
            select(TransactionMessage.transaction_id, TransactionMessage.action)
            .order_by(col(TransactionMessage.id))
        )).all()
    assert ours.ended and ours.meter_stop_wh == 2500 and ours.last_meter_wh == 2500
    assert ours.stop_reason == "EVDisconnected"
    assert unknown.station_tx_id == "777" and unknown.ended and unknown.meter_stop_wh == 2600
    assert unknown.stop_reason == "PowerLoss" and unknown.start_key is None
    assert messages == [(ours.id, "StartTransaction"), (ours.id, "StopTransaction"),
                        (unknown.id, "StopTransaction")]
