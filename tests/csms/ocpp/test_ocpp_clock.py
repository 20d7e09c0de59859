"""The site's UTC offset and next DST change, computed purely and set after a boot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from csms.db.engine import session_factory
from csms.ocpp.admin import station_overview
from csms.ocpp.clock import (
    TimeOffsets,
    changes_needed,
    clock_settings,
    offset_text,
    time_offsets,
)
from tests.csms.ocpp.conftest import Node, add_station


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # Winter in Berlin, Vienna, Zurich: summer time from the last Sunday of March, 01:00 UTC.
        ("Europe/Berlin", datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
         TimeOffsets("+01:00", datetime(2027, 3, 28, 1, 0, tzinfo=UTC), "+02:00")),
        ("Europe/Vienna", datetime(2026, 7, 1, 0, 0, tzinfo=UTC),
         TimeOffsets("+02:00", datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "+01:00")),
        ("Europe/Zurich", datetime(2026, 3, 29, 0, 59, tzinfo=UTC),
         TimeOffsets("+01:00", datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "+02:00")),
        ("UTC", datetime(2026, 11, 22, tzinfo=UTC), TimeOffsets("+00:00", None, None)),
        ("Asia/Kolkata", datetime(2026, 11, 22, tzinfo=UTC), TimeOffsets("+05:30", None, None)),
    ],
)
def test_offsets_and_next_change(zone: str, now: datetime, expected: TimeOffsets) -> None:
    assert time_offsets(ZoneInfo(zone), now) == expected


def test_offset_text_signs() -> None:
    from datetime import timedelta

    assert offset_text(timedelta(hours=-3, minutes=-30)) == "-03:30"
    assert offset_text(timedelta(0)) == "+00:00"


def test_only_advertised_keys_that_differ_are_changed() -> None:
    wanted = clock_settings("ocpp1.6", TimeOffsets(
        "+01:00", datetime(2027, 3, 28, 1, 0, tzinfo=UTC), "+02:00"))
    assert wanted == {
        "TimeOffset": "+01:00",
        "NextTimeOffsetTransitionDateTime": "2027-03-28T01:00:00Z",
        "TimeOffsetNextTransition": "+02:00",
    }
    # A station without the keys hears nothing.
    assert changes_needed(wanted, {"HeartbeatInterval": {"value": "300"}}) == {}
    assert changes_needed(wanted, None) == {}
    held = {
        "TimeOffset": {"value": "+01:00", "readonly": False},
        "NextTimeOffsetTransitionDateTime": {"value": "2026-10-25T01:00:00Z", "readonly": False},
        "TimeOffsetNextTransition": {"value": "+01:00", "readonly": True},
    }
    assert changes_needed(wanted, held) == {
        "NextTimeOffsetTransitionDateTime": "2027-03-28T01:00:00Z"
    }


async def _stored(node: Node, station_id: str) -> dict[str, Any]:
    async with session_factory(node.engine)() as session:
        configuration = (await station_overview(session, station_id))["configuration"]
    return dict(configuration or {})


async def _eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_station_with_the_keys_gets_the_site_offset(lite: Node, protocol: str) -> None:
    await add_station(lite.engine, "WB-T", protocol=protocol)
    prefix = "" if protocol == "ocpp1.6" else "ClockCtrlr."
    instance = "TimeOffsetNextTransition" if protocol == "ocpp1.6" else (
        "ClockCtrlr.TimeOffset[NextTransition]")
    async with lite.station("WB-T", protocol=protocol) as sim:
        sim.memory.configuration = {
            f"{prefix}TimeOffset": "+00:00",
            f"{prefix}NextTimeOffsetTransitionDateTime": "",
            instance: "",
        }
        await sim.boot()
        # The test site's zone is Europe/Berlin.
        expected = time_offsets(ZoneInfo("Europe/Berlin"), datetime.now(UTC))
        await _eventually(lambda: sim.memory.configuration[instance] == expected.next_offset)
        assert sim.memory.configuration[f"{prefix}TimeOffset"] == expected.offset
        # The server records what the station accepted (so the next boot sends nothing).
        async with asyncio.timeout(10):
            while (await _stored(lite, "WB-T")).get(instance, {}).get("value") != (
                expected.next_offset
            ):
                await asyncio.sleep(0.02)
    # Current now: a reconnect changes nothing.
    async with lite.station("WB-T", protocol=protocol) as again:
        await again.boot()
        await again.heartbeat()
        await asyncio.sleep(0.3)
        changes = {"ChangeConfiguration", "SetVariables"}
        assert not [a for a, _ in again.memory.received if a in changes]
