"""What a station is configured with: read after a boot, kept per station, shown to installers.

A station's configuration is read after an accepted boot when the server does not know it yet or
the station reports another firmware version than at the last read (a firmware update can change
keys and defaults). A CALLERROR answer counts as a read under that firmware (nothing learned),
so a station without the message is not asked at every boot. A reconnect storm after a server
restart therefore reads nothing. The read is "sent on the server's own", so the per-station
`send_after_boot` switch turns it off.

* 1.6: `GetConfiguration` without keys; the answer is the whole configuration.
* 2.0.1: `GetBaseReport` with `ConfigurationInventory`; the station sends its variables in
  `NotifyReport` messages, and every NotifyReport's Actual values are merged (also reports an
  operator asked for).

Keys: 1.6 configuration keys as they are; 2.0.1 variables as `Component.Variable`, with
`[instance]` after a component or variable that has one and `@evse` (`@evse:connector`) after
an EVSE-bound component, e.g. `SecurityCtrlr.BasicAuthPassword`, `Connector@1:1.Enabled`.
Values are the station's text (None when it does not reveal one, as for write-only passwords).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from csms.ocpp.connection import StationConnection
from csms.ocpp.events import PROTOCOL_16
from csms.ocpp.wire import StationCallError

log = structlog.get_logger("csms.ocpp.configuration")

# How long the after-boot work waits for a 2.0.1 configuration report to be complete.
REPORT_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class Setting:
    value: str | None
    readonly: bool

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "readonly": self.readonly}


def settings_from_v16(reply: dict[str, Any]) -> dict[str, Setting]:
    """The settings in a 1.6 GetConfiguration.conf."""
    return {
        str(item["key"]): Setting(
            None if item.get("value") is None else str(item["value"]), bool(item["readonly"])
        )
        for item in reply.get("configurationKey") or []
    }


def variable_key(component: dict[str, Any], variable: dict[str, Any]) -> str:
    """`Component[instance]@evse:connector.Variable[instance]` (the parts a variable has)."""
    name = str(component["name"])
    if component.get("instance"):
        name += f"[{component['instance']}]"
    evse = component.get("evse")
    if evse:
        name += f"@{evse['id']}"
        if evse.get("connectorId") is not None:
            name += f":{evse['connectorId']}"
    name += f".{variable['name']}"
    if variable.get("instance"):
        name += f"[{variable['instance']}]"
    return name


def settings_from_report(payload: dict[str, Any]) -> dict[str, Setting]:
    """The Actual values in a 2.0.1 NotifyReport.req."""
    found: dict[str, Setting] = {}
    for data in payload.get("reportData") or []:
        for attribute in data.get("variableAttribute") or []:
            if attribute.get("type", "Actual") != "Actual":
                continue
            value = attribute.get("value")
            found[variable_key(data["component"], data["variable"])] = Setting(
                None if value is None else str(value),
                attribute.get("mutability", "ReadWrite") == "ReadOnly",
            )
    return found


def needs_read(
    known: bool, read_for_firmware: str | None, firmware_now: str | None
) -> bool:
    """Read after a boot when never read, or when the firmware changed since."""
    return not known or read_for_firmware != firmware_now


async def read_after_boot(conn: StationConnection) -> dict[str, Any] | None:
    """Ask the station for its configuration if the server needs it; the configuration known
    afterwards (`Setting.as_json()` per key; None: unknown)."""
    known = await conn.service.known_configuration(conn.station_id)
    if not needs_read(known.settings is not None, known.read_for_firmware, known.firmware):
        return known.settings
    try:
        read = _read_v16 if conn.protocol == PROTOCOL_16 else _read_report
        settings = await read(conn)
    except StationCallError as error:
        log.info("ocpp.configuration_unavailable", station_id=conn.station_id,
                 code=error.reply.code)
        # Not asked again at every boot: a station that cannot answer now will not at its next
        # boot either; a firmware update asks again. What was known stays (or: nothing, {}).
        await conn.service.store_configuration(
            conn.station_id, {}, replace=False, firmware=known.firmware, mark_read=True
        )
        return known.settings or {}
    if settings is None:
        return known.settings
    await conn.service.store_configuration(
        conn.station_id, settings, replace=True, firmware=known.firmware
    )
    log.info("ocpp.configuration_read", station_id=conn.station_id, keys=len(settings))
    return {key: setting.as_json() for key, setting in settings.items()}


async def _read_v16(conn: StationConnection) -> dict[str, Setting]:
    return settings_from_v16(await conn.call("GetConfiguration", {}))


async def _read_report(conn: StationConnection) -> dict[str, Setting] | None:
    """2.0.1: the values arrive in NotifyReport parts after the answer; what follows the read
    (the clock) needs them, so wait a while for the last one. None: no complete report (it is
    asked for again at the next boot)."""
    request_id = conn.next_request_id()
    report = conn.expect_report(request_id)
    try:
        reply = await conn.call(
            "GetBaseReport", {"requestId": request_id, "reportBase": "ConfigurationInventory"}
        )
        if reply.get("status") != "Accepted":
            log.info("ocpp.configuration_report_refused", station_id=conn.station_id,
                     status=reply.get("status"))
            return None
        await asyncio.wait_for(report.complete.wait(), REPORT_WAIT_S)
    except TimeoutError:
        log.info("ocpp.configuration_report_late", station_id=conn.station_id)
        return None
    finally:
        conn.forget_report(request_id)
    return dict(report.parts)
