"""A station's configuration, read after its boot when unknown or after a firmware change."""

from __future__ import annotations

import asyncio

import pytest

from csms.db.engine import session_factory
from csms.ocpp.admin import set_send_after_boot, station_overview
from csms.ocpp.configuration import (
    Setting,
    needs_read,
    settings_from_report,
    settings_from_v16,
    variable_key,
)
from tests.csms.ocpp.conftest import Node, add_station


def test_v16_answer_becomes_settings() -> None:
    reply = {
        "configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "AuthorizationKey", "readonly": False},
            {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        ],
        "unknownKey": [],
    }
    assert settings_from_v16(reply) == {
        "HeartbeatInterval": Setting("300", False),
        "AuthorizationKey": Setting(None, False),
        "NumberOfConnectors": Setting("2", True),
    }


def test_variable_keys_name_instances_and_evses() -> None:
    assert variable_key({"name": "OCPPCommCtrlr"}, {"name": "HeartbeatInterval"}) == (
        "OCPPCommCtrlr.HeartbeatInterval"
    )
    assert variable_key(
        {"name": "Connector", "evse": {"id": 1, "connectorId": 2}}, {"name": "Enabled"}
    ) == "Connector@1:2.Enabled"
    assert variable_key(
        {"name": "TxCtrlr", "instance": "A", "evse": {"id": 3}},
        {"name": "TxStartPoint", "instance": "x"},
    ) == "TxCtrlr[A]@3.TxStartPoint[x]"


def test_report_keeps_actual_values_only() -> None:
    payload = {
        "requestId": 1, "generatedAt": "2026-11-22T10:00:00Z", "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [
                    {"type": "Actual", "value": "300", "mutability": "ReadWrite"},
                    {"type": "MaxSet", "value": "3600"},
                ],
            },
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "SecurityProfile"},
                "variableAttribute": [{"value": "1", "mutability": "ReadOnly"}],
            },
        ],
    }
    assert settings_from_report(payload) == {
        "OCPPCommCtrlr.HeartbeatInterval": Setting("300", False),
        "SecurityCtrlr.SecurityProfile": Setting("1", True),
    }


@pytest.mark.parametrize(
    ("known", "read_for", "now", "expected"),
    [
        (False, None, None, True),
        (True, "1.0", "1.0", False),
        (True, "1.0", "1.1", True),
        (True, None, None, False),
    ],
)
def test_read_when_unknown_or_firmware_changed(
    known: bool, read_for: str | None, now: str | None, expected: bool
) -> None:
    assert needs_read(known, read_for, now) is expected


async def _overview(node: Node, station_id: str) -> dict[str, object]:
    async with session_factory(node.engine)() as session:
        return await station_overview(session, station_id)


async def _eventually_configured(node: Node, station_id: str) -> dict[str, object]:
    async with asyncio.timeout(10):
        while True:
            overview = await _overview(node, station_id)
            configuration = overview["configuration"]
            if isinstance(configuration, dict) and configuration:
                return configuration
            await asyncio.sleep(0.02)


async def test_v16_configuration_read_once_per_firmware(node: Node) -> None:
    await add_station(node.engine, "WB-C16")
    async with node.station("WB-C16") as sim:
        sim.memory.configuration = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}
        await sim.boot()
        configuration = await _eventually_configured(node, "WB-C16")
        assert configuration["MeterValueSampleInterval"] == {"value": "60", "readonly": False}
        assert [a for a, _ in sim.memory.received].count("GetConfiguration") == 1
    # The same firmware again (a reconnect): nothing is read.
    async with node.station("WB-C16") as again:
        await again.boot()
        await again.heartbeat()
        await asyncio.sleep(0.3)
        assert "GetConfiguration" not in [a for a, _ in again.memory.received]


async def test_v201_configuration_arrives_as_a_report(node: Node) -> None:
    await add_station(node.engine, "WB-C201", protocol="ocpp2.0.1")
    async with node.station("WB-C201", protocol="ocpp2.0.1") as sim:
        sim.memory.configuration = {"OCPPCommCtrlr.HeartbeatInterval": "300"}
        await sim.boot()
        configuration = await _eventually_configured(node, "WB-C201")
        assert configuration == {
            "OCPPCommCtrlr.HeartbeatInterval": {"value": "300", "readonly": False}
        }
        assert any(
            action == "GetBaseReport" and payload["report_base"] == "ConfigurationInventory"
            for action, payload in sim.memory.received
        )


async def test_switched_off_station_is_not_read(lite: Node) -> None:
    await add_station(lite.engine, "WB-OFF")
    async with session_factory(lite.engine)() as session:
        await set_send_after_boot(session, "WB-OFF", False)
        await session.commit()
    async with lite.station("WB-OFF") as sim:
        sim.memory.configuration = {"HeartbeatInterval": "300"}
        await sim.boot()
        await sim.heartbeat()
        await asyncio.sleep(0.3)
        assert sim.memory.received == []
    assert (await _overview(lite, "WB-OFF"))["configuration"] is None


async def test_a_fleet_station_answers_without_keeping_what_it_received(lite: Node) -> None:
    # Simulated fleets of thousands keep no payloads (a local list is megabytes of dicts); the
    # station still answers, so the server learns its configuration.
    await add_station(lite.engine, "WB-FLEET")
    async with lite.station("WB-FLEET") as sim:
        sim.memory.keep_received = False
        sim.memory.configuration = {"HeartbeatInterval": "300"}
        await sim.boot()
        configuration = await _eventually_configured(lite, "WB-FLEET")
        assert configuration["HeartbeatInterval"] == {"value": "300", "readonly": False}
        assert sim.memory.received == []
