"""The site's local time for stations that display it: UTC offset and the next DST change.

OCPP has no time zones: stations run on UTC (the boot and heartbeat answers carry the time) and
show local time only if told the offset. The Open Charge Alliance's California Pricing
requirements add configuration keys for it (1.6: `TimeOffset`, `NextTimeOffsetTransitionDateTime`,
`TimeOffsetNextTransition`; 2.0.1: ClockCtrlr `TimeOffset`, `NextTimeOffsetTransitionDateTime` and
`TimeOffset` instance `NextTransition`), so a station switches to summer time on its own.

After a boot the server sets them on stations whose configuration (read after boot) shows the
keys, and only those whose value differs: a station without them never hears of it, one that is
current hears nothing. Part of what is "sent on the server's own" (`send_after_boot`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from csms.ocpp.configuration import Setting
from csms.ocpp.connection import StationConnection
from csms.ocpp.events import PROTOCOL_16

log = structlog.get_logger("csms.ocpp.clock")

# How far ahead a DST change is looked for (zones without one have none within a year).
_HORIZON_DAYS = 400

V16_KEYS = ("TimeOffset", "NextTimeOffsetTransitionDateTime", "TimeOffsetNextTransition")
V201_KEYS = (
    "ClockCtrlr.TimeOffset",
    "ClockCtrlr.NextTimeOffsetTransitionDateTime",
    "ClockCtrlr.TimeOffset[NextTransition]",
)


@dataclass(frozen=True, slots=True)
class TimeOffsets:
    offset: str  # "+01:00"
    next_transition: datetime | None  # UTC instant of the next change, None: no change ahead
    next_offset: str | None


def offset_text(delta: timedelta) -> str:
    """`+01:00` / `-03:30` for a UTC offset."""
    minutes = int(delta.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def time_offsets(zone: ZoneInfo, now: datetime) -> TimeOffsets:
    """The zone's offset at `now` and its next change (to the minute)."""
    return _time_offsets(zone.key, now.astimezone(UTC).replace(second=0, microsecond=0))


@lru_cache(maxsize=256)
def _time_offsets(zone_key: str, now: datetime) -> TimeOffsets:
    zone = ZoneInfo(zone_key)

    def offset_at(moment: datetime) -> timedelta:
        delta = moment.astimezone(zone).utcoffset()
        return delta if delta is not None else timedelta(0)

    current = offset_at(now)
    # Day steps find the day of the change; halving the interval finds the minute.
    before = now
    for _day in range(_HORIZON_DAYS):
        after = before + timedelta(days=1)
        if offset_at(after) != current:
            while after - before > timedelta(minutes=1):
                middle = before + (after - before) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle <= before:
                    break
                if offset_at(middle) == current:
                    before = middle
                else:
                    after = middle
            return TimeOffsets(offset_text(current), after, offset_text(offset_at(after)))
        before = after
    return TimeOffsets(offset_text(current), None, None)


def clock_settings(protocol: str, offsets: TimeOffsets) -> dict[str, str]:
    """The configuration values that tell a station `offsets`, keyed as the configuration read
    names them."""
    keys = V16_KEYS if protocol == PROTOCOL_16 else V201_KEYS
    values = [offsets.offset, "", ""]
    if offsets.next_transition is not None and offsets.next_offset is not None:
        values[1] = offsets.next_transition.strftime("%Y-%m-%dT%H:%M:%SZ")
        values[2] = offsets.next_offset
    return dict(zip(keys, values, strict=True))


def changes_needed(
    wanted: Mapping[str, str], configuration: Mapping[str, Any] | None
) -> dict[str, str]:
    """The wanted values the station has keys for and does not hold yet (nothing when the
    station does not advertise the offset key at all)."""
    if not configuration or next(iter(wanted)) not in configuration:
        return {}
    changes = {}
    for key, value in wanted.items():
        known = configuration.get(key)
        if isinstance(known, dict) and not known.get("readonly") and known.get("value") != value:
            changes[key] = value
    return changes


async def set_clock_after_boot(
    conn: StationConnection, configuration: Mapping[str, Any] | None, zone: ZoneInfo,
    now: datetime,
) -> int:
    """Set the offsets the station lacks, judged by its `configuration` (as read after boot);
    how many values it accepted."""
    changes = changes_needed(clock_settings(conn.protocol, time_offsets(zone, now)), configuration)
    if not changes:
        return 0
    accepted: dict[str, Setting] = {}
    if conn.protocol == PROTOCOL_16:
        for key, value in changes.items():
            reply = await conn.call("ChangeConfiguration", {"key": key, "value": value})
            if reply.get("status") in ("Accepted", "RebootRequired"):
                accepted[key] = Setting(value, False)
    else:
        data = []
        for key, value in changes.items():
            component, _, variable = key.partition(".")
            name, _, instance = variable.partition("[")
            entry: dict[str, Any] = {"name": name}
            if instance:
                entry["instance"] = instance.rstrip("]")
            data.append({"attributeValue": value, "component": {"name": component},
                         "variable": entry})
        reply = await conn.call("SetVariables", {"setVariableData": data})
        for (key, value), result in zip(
            changes.items(), reply.get("setVariableResult", []), strict=False
        ):
            if result.get("attributeStatus") in ("Accepted", "RebootRequired"):
                accepted[key] = Setting(value, False)
    if accepted:
        await conn.service.store_configuration(conn.station_id, accepted, replace=False)
    log.info("ocpp.clock_set", station_id=conn.station_id, accepted=sorted(accepted))
    return len(accepted)
