"""Station messages of both versions, handled and stored (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from csms.db.engine import session_factory
from csms.ocpp.models import (
    ConnectorStatus,
    MeterValue,
    OcppStation,
    StatusEvent,
    Transaction,
)
from tests.csms.ocpp.conftest import Node, add_badge, add_station

pytestmark = pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])


async def rows(node: Node, model: type, *where: object) -> list:
    async with session_factory(node.engine)() as session:
        query = select(model)
        for clause in where:
            query = query.where(clause)
        return list(
            (await session.exec(query.order_by(*model.__table__.primary_key.columns))).all()
        )


async def test_boot_heartbeat_status_charge(node: Node, protocol: str) -> None:
    await add_station(node.engine, "WB-1", protocol=protocol)
    await add_badge(node.engine)
    async with node.station("WB-1", protocol=protocol) as station:
        assert await station.boot() == "Accepted"
        assert station.heartbeat_interval == 300
        assert (await station.heartbeat()).endswith("Z")
        await station.status(1, "Available")
        session = await station.charge(
            "04A2B3C4", power_w=11000, duration_s=60, interval_s=10, time_scale=0.001
        )
    assert int(session.transaction_id) if protocol == "ocpp1.6" else session.transaction_id

    [state] = await rows(node, OcppStation)
    assert state.boot_status == "Accepted" and state.vendor == "Volthaus"
    assert state.serial_number == "SN-WB-1"
    statuses = [e.status for e in await rows(node, StatusEvent)]
    if protocol == "ocpp1.6":
        assert statuses == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    else:
        assert statuses == ["Available", "Occupied", "Occupied", "Occupied", "Available"]
    [current] = await rows(node, ConnectorStatus)
    assert current.status == "Available"

    [tx] = await rows(node, Transaction)
    assert tx.ended and tx.meter_start_wh == 0
    # 11 kW for 6 x 10 s: 30 Wh per interval, 180 Wh in all.
    assert tx.meter_stop_wh == 180
    energy = await rows(
        node, MeterValue, col(MeterValue.measurand) == "Energy.Active.Import.Register"
    )
    assert [m.wh for m in energy if m.context == "Sample.Periodic"] == [30, 60, 90, 120, 150, 180]
    assert all(m.transaction_id == tx.id for m in energy)
    power = await rows(node, MeterValue, col(MeterValue.measurand) == "Power.Active.Import")
    assert {p.value for p in power} == {"11000"} and {p.unit for p in power} == {"W"}
