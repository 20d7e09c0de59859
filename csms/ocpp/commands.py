"""Commands to stations, version-neutral, from any node.

`StationGateway` is what the rest of Volthaus uses (the API, billing, rfid's list pushes): it
routes through the bus to whichever node holds the station's websocket, where the server runs
the command on the connection (`StationCommands`, implemented by `v16.Station16` and
`v201.Station201`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

from csms.bus.errors import RemoteError, StationNotConnected
from csms.bus.interface import Bus
from csms.metrics import COMMAND_SECONDS
from csms.ocpp.events import PROTOCOL_16, PROTOCOL_201
from csms.ocpp.wire import SchemaProblem, schema_problems

# CSMS-initiated actions an operator may send, per version.
CSMS_ACTIONS: Final[dict[str, frozenset[str]]] = {
    PROTOCOL_16: frozenset(
        {
            "RemoteStartTransaction", "RemoteStopTransaction", "Reset", "ChangeAvailability",
            "UnlockConnector", "GetConfiguration", "ChangeConfiguration", "ClearCache",
            "TriggerMessage", "DataTransfer", "SendLocalList", "GetLocalListVersion",
            "ReserveNow", "CancelReservation", "SetChargingProfile", "ClearChargingProfile",
            "GetCompositeSchedule", "UpdateFirmware", "GetDiagnostics",
            # Security Whitepaper
            "ExtendedTriggerMessage", "CertificateSigned", "InstallCertificate",
            "GetInstalledCertificateIds", "DeleteCertificate", "GetLog", "SignedUpdateFirmware",
        }
    ),
    PROTOCOL_201: frozenset(
        {
            "RequestStartTransaction", "RequestStopTransaction", "Reset", "ChangeAvailability",
            "UnlockConnector", "GetVariables", "SetVariables", "GetBaseReport", "GetReport",
            "ClearCache", "TriggerMessage", "DataTransfer", "SendLocalList",
            "GetLocalListVersion", "ReserveNow", "CancelReservation", "SetChargingProfile",
            "ClearChargingProfile", "GetChargingProfiles", "GetCompositeSchedule",
            "UpdateFirmware", "GetLog", "GetTransactionStatus", "CostUpdated",
            "SetDisplayMessage", "GetDisplayMessages", "ClearDisplayMessage",
            "CustomerInformation", "CertificateSigned", "InstallCertificate",
            "GetInstalledCertificateIds", "DeleteCertificate", "SetNetworkProfile",
            "SetMonitoringBase", "SetMonitoringLevel", "SetVariableMonitoring",
            "ClearVariableMonitoring", "GetMonitoringReport", "PublishFirmware",
            "UnpublishFirmware",
        }
    ),
}

# Typed operations the bus carries (name -> keyword arguments they accept).
TYPED_OPS: Final = {
    "remote_start": {"id_tag", "evse_id"},
    "remote_stop": {"station_tx_id"},
    "reset": {"hard"},
    "set_password": {"password"},
    "get_local_list_version": set(),
    "trigger_message": {"message", "evse_id"},
    "set_charging_limit": {"connector_id", "limit_a", "phases", "transaction_id"},
    "set_fallback_limit": {"limit_a", "phases", "max_a"},
    "recent_messages": set(),
}

# Charging profile ids Volthaus owns on a station (its own load management): a new limit
# replaces the previous one with the same id. TxDefault per connector/EVSE: 1000 + number; the
# running transaction's TxProfile: 2000 + number; the static fallback (TxDefaultProfile at stack
# level 0 for the whole station): 900; the station's maximum: 899.
FALLBACK_PROFILE_ID = 900
TX_DEFAULT_PROFILE_BASE = 1000
TX_PROFILE_BASE = 2000


class StationCommands(Protocol):
    """What the holding node can do on a live connection, whatever the version."""

    station_id: str
    protocol: str

    async def call(
        self, action: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]: ...

    async def remote_start(self, id_tag: str, evse_id: int | None = None) -> bool: ...

    async def remote_stop(self, station_tx_id: str) -> bool: ...

    async def reset(self, hard: bool = False) -> bool: ...

    async def set_password(self, password: str) -> bool: ...

    async def get_local_list_version(self) -> int: ...

    async def trigger_message(self, message: str, evse_id: int | None = None) -> str: ...

    async def set_charging_limit(
        self, connector_id: int, limit_a: int | None, phases: int,
        transaction_id: str | None = None,
    ) -> bool:
        """Limit a connector/EVSE (the running transaction's, when given) to `limit_a` per
        phase; 0 pauses, None clears Volthaus's limit. True when the station accepted."""
        ...

    async def set_fallback_limit(self, limit_a: int, phases: int, max_a: int) -> bool:
        """At boot: the station's maximum `max_a` (ChargePointMaxProfile /
        ChargingStationMaxProfile), and `limit_a` for any transaction Volthaus has not limited
        yet (TxDefaultProfile, stack level 0): what holds when Volthaus cannot be reached."""
        ...


class CommandError(Exception):
    """Base of what a command can end with besides an answer."""


class UnknownAction(CommandError):
    def __init__(self, protocol: str, action: str) -> None:
        super().__init__(f"{action!r} is not a command a {protocol} station accepts")
        self.protocol = protocol
        self.action = action


class InvalidPayload(CommandError):
    def __init__(self, action: str, problems: list[SchemaProblem]) -> None:
        super().__init__(f"{action}: " + "; ".join(p.as_text() for p in problems))
        self.action = action
        self.problems = problems


class StationRejected(CommandError):
    """The station answered with a CALLERROR (code as it sent it)."""

    def __init__(self, station_id: str, code: str, description: str, details: Any) -> None:
        super().__init__(f"station {station_id!r} answered {code}: {description}")
        self.station_id = station_id
        self.code = code
        self.description = description
        self.details = details


class BadStationReply(CommandError):
    """The station's answer breaks the OCPP schema."""

    def __init__(self, station_id: str, problems: list[str]) -> None:
        super().__init__(f"station {station_id!r} answered with an invalid payload: {problems}")
        self.station_id = station_id
        self.problems = problems


def check_command(protocol: str, action: str, payload: Any) -> None:
    """Raise UnknownAction or InvalidPayload (every problem with its path)."""
    if action not in CSMS_ACTIONS.get(protocol, frozenset()):
        raise UnknownAction(protocol, action)
    problems = schema_problems(protocol, action, payload)
    if problems:
        raise InvalidPayload(action, problems)


class StationGateway:
    """Commands to any station from any node (through the bus to the node holding it).

    Raises `csms.bus.errors.StationNotConnected` (nobody holds it, or it dropped mid-call),
    `csms.bus.errors.RequestTimeout` (no answer in time), `StationRejected`, `BadStationReply`.
    """

    def __init__(self, bus: Bus, *, default_timeout: float = 30.0) -> None:
        self._bus = bus
        self.default_timeout = default_timeout

    async def call(
        self,
        station_id: str,
        action: str,
        payload: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send an OCPP CALL (spec field names); the CALLRESULT payload comes back."""
        return await self._request(
            station_id, {"op": "call", "action": action, "payload": dict(payload)}, timeout
        )

    async def run(
        self, station_id: str, op: str, *, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """A typed operation (`TYPED_OPS`) whatever the station's version."""
        if op not in TYPED_OPS or not set(kwargs) <= TYPED_OPS[op]:
            raise ValueError(f"unknown operation {op!r} or arguments {sorted(kwargs)}")
        reply = await self._request(station_id, {"op": op, "args": kwargs}, timeout)
        return reply.get("value")

    async def remote_stop(self, station_id: str, station_tx_id: str) -> bool:
        return bool(await self.run(station_id, "remote_stop", station_tx_id=station_tx_id))

    async def set_charging_limit(
        self, station_id: str, connector_id: int, limit_a: int | None, phases: int,
        transaction_id: str | None = None,
    ) -> bool:
        """False when the station rejected the profile, answered with an error, or cannot be
        reached: load management then counts it as drawing its maximum."""
        try:
            return bool(await self.run(
                station_id, "set_charging_limit", connector_id=connector_id, limit_a=limit_a,
                phases=phases, transaction_id=transaction_id, timeout=15))
        except (CommandError, StationNotConnected, TimeoutError):
            return False

    async def remote_start(self, station_id: str, id_tag: str, evse_id: int | None = None) -> bool:
        return bool(await self.run(station_id, "remote_start", id_tag=id_tag, evse_id=evse_id))

    async def _request(
        self, station_id: str, request: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        limit = self.default_timeout if timeout is None else timeout
        op = str(request.get("action") or request.get("op"))
        started = time.perf_counter()
        try:
            envelope = await self._bus.request_station(station_id, request, limit)
        except RemoteError as error:
            COMMAND_SECONDS.labels(op, "unreachable").observe(time.perf_counter() - started)
            raise CommandError(str(error)) from error
        outcome = ("call_error" if "call_error" in envelope else
                   "invalid_reply" if "invalid_reply" in envelope else "ok")
        COMMAND_SECONDS.labels(op, outcome).observe(time.perf_counter() - started)
        if "call_error" in envelope:
            err = envelope["call_error"]
            raise StationRejected(station_id, err["code"], err["description"], err["details"])
        if "invalid_reply" in envelope:
            raise BadStationReply(station_id, list(envelope["invalid_reply"]))
        result: dict[str, Any] = envelope["result"]
        return result
