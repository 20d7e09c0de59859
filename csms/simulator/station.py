"""A simulated wallbox: a real OCPP client (the `ocpp` library's `ChargePoint` over `websockets`).

`SimStation` speaks 1.6J or 2.0.1 behind one interface: boot, heartbeat, status, badge
(Authorize), charge at a given power with meter values, stop. It answers the CSMS's commands a
real station answers (remote start/stop, reset, configuration and variables, local lists,
trigger, reservations), and it remembers what it was told, so tests can check what the server
sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL_16 = "ocpp1.6"
PROTOCOL_201 = "ocpp2.0.1"


def _variable_name(component: dict[str, Any], variable: dict[str, Any]) -> str:
    """`Component.Variable`, with `[instance]` after a variable that has one (2.0.1)."""
    name = f"{component['name']}.{variable['name']}"
    return f"{name}[{variable['instance']}]" if variable.get("instance") else name


@dataclass
class StationMemory:
    """What the central system told the station."""

    password: str | None = None
    configuration: dict[str, str] = field(default_factory=dict)
    local_list_version: int = 0
    local_list: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Off in fleets of thousands: every payload kept (a 2,000-entry local list is about 2 MB
    # of dicts) was 20 GB at 10,000 stations.
    keep_received: bool = True
    remote_starts: list[str] = field(default_factory=list)
    remote_stops: list[str] = field(default_factory=list)
    # Set to make the station never answer (for timeout tests): actions named here hang.
    hang_on: set[str] = field(default_factory=set)
    # Actions named here make the station drop its connection instead of answering.
    drop_on: set[str] = field(default_factory=set)
    # Actions named here are answered with a CALLERROR NotSupported (a station without them).
    refuse: set[str] = field(default_factory=set)
    # Charging limits in A per phase the CSMS set, by purpose: the station's maximum
    # (ChargePointMaxProfile), the default for new transactions per connector (0: all), the
    # running transaction's; and whether profiles are refused (answered Rejected).
    max_limit: float | None = None
    default_limits: dict[int, float] = field(default_factory=dict)
    tx_limits: dict[int, float] = field(default_factory=dict)
    reject_profiles: bool = False
    # 2.0.1 transactions the station still has (GetTransactionStatus answers from it); a test
    # that makes the station "forget" one removes it.
    ongoing: set[str] = field(default_factory=set)
    # Reservations the station accepted, by reservationId (the request as received), and what
    # it answers the next ReserveNow (Accepted, Faulted, Occupied, Rejected, Unavailable).
    reservations: dict[int, dict[str, Any]] = field(default_factory=dict)
    reserve_answer: str = "Accepted"

    def reserve(self, reservation_id: int, request: dict[str, Any]) -> str:
        if self.reserve_answer == "Accepted":
            self.reservations[reservation_id] = request
        return self.reserve_answer

    def cancel_reservation(self, reservation_id: int) -> str:
        return "Accepted" if self.reservations.pop(reservation_id, None) else "Rejected"

    def limit_a(self, connector: int) -> float | None:
        """As a station composes its schedule: the transaction's limit, else the default,
        never above the station's maximum."""
        own = self.tx_limits.get(connector)
        if own is None:
            own = self.default_limits.get(connector, self.default_limits.get(0))
        found = [v for v in (own, self.max_limit) if v is not None]
        return min(found) if found else None

    def apply_profile(self, connector: int, profile: dict[str, Any]) -> None:
        purpose = profile["charging_profile_purpose"]
        limit = _profile_limit(profile)
        if purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile"):
            self.max_limit = limit
        elif purpose == "TxDefaultProfile":
            self.default_limits[connector] = limit
        else:
            self.tx_limits[connector] = limit


def _profile_limit(profile: dict[str, Any]) -> float:
    schedule: Any = profile["charging_schedule"]
    if isinstance(schedule, list):  # 2.0.1: a list of schedules
        schedule = schedule[0]
    return float(schedule["charging_schedule_period"][0]["limit"])


class _Answering:
    """Handlers shared by both versions' clients (what the CSMS may ask)."""

    memory: StationMemory
    _connection: ClientConnection

    async def _note(self, action: str, payload: dict[str, Any]) -> None:
        if self.memory.keep_received:
            self.memory.received.append((action, payload))
        if action in self.memory.drop_on:
            await self._connection.close(1001, "station dropped")
            raise asyncio.CancelledError
        if action in self.memory.hang_on:
            await asyncio.sleep(3600)
        if action in self.memory.refuse:
            raise NotSupportedError(f"{action} is not supported by this station")


class Client16(_Answering, ChargePoint16):
    def __init__(self, station_id: str, connection: ClientConnection, memory: StationMemory):
        super().__init__(station_id, connection, response_timeout=60)
        self.memory = memory

    @on("RemoteStartTransaction")
    async def on_remote_start(self, id_tag: str, **kwargs: Any) -> Any:
        await self._note("RemoteStartTransaction", {"id_tag": id_tag, **kwargs})
        self.memory.remote_starts.append(id_tag)
        return result16.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    async def on_remote_stop(self, transaction_id: int, **kwargs: Any) -> Any:
        await self._note("RemoteStopTransaction", {"transaction_id": transaction_id})
        self.memory.remote_stops.append(str(transaction_id))
        return result16.RemoteStopTransaction(status="Accepted")

    @on("Reset")
    async def on_reset(self, type: str, **kwargs: Any) -> Any:
        await self._note("Reset", {"type": type})
        return result16.Reset(status="Accepted")

    @on("ChangeConfiguration")
    async def on_change_configuration(self, key: str, value: str, **kwargs: Any) -> Any:
        await self._note("ChangeConfiguration", {"key": key, "value": value})
        self.memory.configuration[key] = value
        if key == "AuthorizationKey":
            self.memory.password = value
        return result16.ChangeConfiguration(status="Accepted")

    @on("GetConfiguration")
    async def on_get_configuration(self, key: list[str] | None = None, **kwargs: Any) -> Any:
        await self._note("GetConfiguration", {"key": key})
        items = [
            {"key": k, "readonly": False, "value": v}
            for k, v in self.memory.configuration.items()
            if not key or k in key
        ]
        unknown = [k for k in key or [] if k not in self.memory.configuration]
        return result16.GetConfiguration(configuration_key=items, unknown_key=unknown or None)

    @on("GetLocalListVersion")
    async def on_get_local_list_version(self, **kwargs: Any) -> Any:
        await self._note("GetLocalListVersion", {})
        return result16.GetLocalListVersion(list_version=self.memory.local_list_version)

    @on("SendLocalList")
    async def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        await self._note(
            "SendLocalList",
            {
                "list_version": list_version,
                "update_type": update_type,
                "local_authorization_list": local_authorization_list or [],
            },
        )
        if update_type == "Full":
            self.memory.local_list.clear()
        for item in local_authorization_list or []:
            info = item.get("id_tag_info")
            if info is None:
                self.memory.local_list.pop(item["id_tag"], None)
            else:
                self.memory.local_list[item["id_tag"]] = info["status"]
        self.memory.local_list_version = list_version
        return result16.SendLocalList(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, **kwargs: Any) -> Any:
        await self._note("TriggerMessage", {"requested_message": requested_message})
        return result16.TriggerMessage(status="Accepted")

    @on("SetChargingProfile")
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **kwargs: Any
    ) -> Any:
        await self._note("SetChargingProfile", {"connector_id": connector_id,
                                                "cs_charging_profiles": cs_charging_profiles})
        if self.memory.reject_profiles:
            return result16.SetChargingProfile(status="Rejected")
        self.memory.apply_profile(connector_id, cs_charging_profiles)
        return result16.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        await self._note("ClearChargingProfile", kwargs)
        self.memory.tx_limits.clear()
        return result16.ClearChargingProfile(status="Accepted")

    @on("ChangeAvailability")
    async def on_change_availability(self, connector_id: int, type: str, **kwargs: Any) -> Any:
        await self._note("ChangeAvailability", {"connector_id": connector_id, "type": type})
        return result16.ChangeAvailability(status="Accepted")

    @on("UnlockConnector")
    async def on_unlock_connector(self, connector_id: int, **kwargs: Any) -> Any:
        await self._note("UnlockConnector", {"connector_id": connector_id})
        return result16.UnlockConnector(status="Unlocked")

    @on("ClearCache")
    async def on_clear_cache(self, **kwargs: Any) -> Any:
        await self._note("ClearCache", {})
        return result16.ClearCache(status="Accepted")

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        await self._note("DataTransfer", {"vendor_id": vendor_id, **kwargs})
        return result16.DataTransfer(status="Accepted", data=kwargs.get("data"))

    @on("ReserveNow")
    async def on_reserve_now(self, reservation_id: int, **kwargs: Any) -> Any:
        request = {"reservation_id": reservation_id, **kwargs}
        await self._note("ReserveNow", request)
        return result16.ReserveNow(status=self.memory.reserve(reservation_id, request))

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int, **kwargs: Any) -> Any:
        await self._note("CancelReservation", {"reservation_id": reservation_id})
        return result16.CancelReservation(
            status=self.memory.cancel_reservation(reservation_id)
        )


class Client201(_Answering, ChargePoint201):
    def __init__(self, station_id: str, connection: ClientConnection, memory: StationMemory):
        super().__init__(station_id, connection, response_timeout=60)
        self.memory = memory

    @on("RequestStartTransaction")
    async def on_request_start(
        self, id_token: dict[str, Any], remote_start_id: int, **kwargs: Any
    ) -> Any:
        await self._note("RequestStartTransaction", {"id_token": id_token, **kwargs})
        self.memory.remote_starts.append(id_token["id_token"])
        return result201.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id: str, **kwargs: Any) -> Any:
        await self._note("RequestStopTransaction", {"transaction_id": transaction_id})
        self.memory.remote_stops.append(transaction_id)
        return result201.RequestStopTransaction(status="Accepted")

    @on("Reset")
    async def on_reset(self, type: str, **kwargs: Any) -> Any:
        await self._note("Reset", {"type": type})
        return result201.Reset(status="Accepted")

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        await self._note("SetVariables", {"set_variable_data": set_variable_data})
        results = []
        for item in set_variable_data:
            name = _variable_name(item["component"], item["variable"])
            self.memory.configuration[name] = item["attribute_value"]
            if name == "SecurityCtrlr.BasicAuthPassword":
                self.memory.password = item["attribute_value"]
            results.append(
                {
                    "attribute_status": "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return result201.SetVariables(set_variable_result=results)

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        await self._note("GetVariables", {"get_variable_data": get_variable_data})
        results = []
        for item in get_variable_data:
            name = _variable_name(item["component"], item["variable"])
            value = self.memory.configuration.get(name)
            result: dict[str, Any] = {
                "attribute_status": "Accepted" if value is not None else "UnknownVariable",
                "component": item["component"],
                "variable": item["variable"],
            }
            if value is not None:
                result["attribute_value"] = value
            results.append(result)
        return result201.GetVariables(get_variable_result=results)

    @on("GetBaseReport")
    async def on_get_base_report(self, request_id: int, report_base: str, **kwargs: Any) -> Any:
        await self._note("GetBaseReport", {"request_id": request_id, "report_base": report_base})
        return result201.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    async def send_base_report(self, request_id: int, report_base: str, **kwargs: Any) -> None:
        """The configuration (`Component.Variable` keys of memory.configuration) as a report."""
        data = []
        for name, value in sorted(self.memory.configuration.items()):
            component, _, variable = name.partition(".")
            variable_name, _, instance = (variable or component).partition("[")
            reported: dict[str, Any] = {"name": variable_name}
            if instance:
                reported["instance"] = instance.rstrip("]")
            data.append({
                "component": {"name": component},
                "variable": reported,
                "variable_attribute": [{"type": "Actual", "value": value,
                                        "mutability": "ReadWrite"}],
            })
        await self.call(call201.NotifyReport(
            request_id=request_id, generated_at=datetime.now(UTC).isoformat(), seq_no=0,
            tbc=False, report_data=data or None,
        ))

    @on("GetLocalListVersion")
    async def on_get_local_list_version(self, **kwargs: Any) -> Any:
        await self._note("GetLocalListVersion", {})
        return result201.GetLocalListVersion(version_number=self.memory.local_list_version)

    @on("SendLocalList")
    async def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        await self._note(
            "SendLocalList",
            {
                "version_number": version_number,
                "update_type": update_type,
                "local_authorization_list": local_authorization_list or [],
            },
        )
        if update_type == "Full":
            self.memory.local_list.clear()
        for item in local_authorization_list or []:
            info = item.get("id_token_info")
            tag = item["id_token"]["id_token"]
            if info is None:
                self.memory.local_list.pop(tag, None)
            else:
                self.memory.local_list[tag] = info["status"]
        self.memory.local_list_version = version_number
        return result201.SendLocalList(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, **kwargs: Any) -> Any:
        await self._note("TriggerMessage", {"requested_message": requested_message})
        return result201.TriggerMessage(status="Accepted")

    @on("SetChargingProfile")
    async def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **kwargs: Any
    ) -> Any:
        await self._note("SetChargingProfile", {"evse_id": evse_id,
                                                "charging_profile": charging_profile})
        if self.memory.reject_profiles:
            return result201.SetChargingProfile(status="Rejected")
        self.memory.apply_profile(evse_id, charging_profile)
        return result201.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        await self._note("ClearChargingProfile", kwargs)
        self.memory.tx_limits.clear()
        return result201.ClearChargingProfile(status="Accepted")

    @on("ChangeAvailability")
    async def on_change_availability(self, operational_status: str, **kwargs: Any) -> Any:
        await self._note("ChangeAvailability", {"operational_status": operational_status})
        return result201.ChangeAvailability(status="Accepted")

    @on("UnlockConnector")
    async def on_unlock_connector(self, evse_id: int, connector_id: int, **kwargs: Any) -> Any:
        await self._note("UnlockConnector", {"evse_id": evse_id, "connector_id": connector_id})
        return result201.UnlockConnector(status="Unlocked")

    @on("ClearCache")
    async def on_clear_cache(self, **kwargs: Any) -> Any:
        await self._note("ClearCache", {})
        return result201.ClearCache(status="Accepted")

    @on("GetTransactionStatus")
    async def on_get_transaction_status(self, transaction_id: str | None = None,
                                        **kwargs: Any) -> Any:
        await self._note("GetTransactionStatus", {"transaction_id": transaction_id})
        if transaction_id is None:
            return result201.GetTransactionStatus(messages_in_queue=False)
        return result201.GetTransactionStatus(
            messages_in_queue=False, ongoing_indicator=transaction_id in self.memory.ongoing)

    @on("CostUpdated")
    async def on_cost_updated(self, total_cost: Any, transaction_id: str, **kwargs: Any) -> Any:
        await self._note(
            "CostUpdated", {"total_cost": total_cost, "transaction_id": transaction_id}
        )
        return result201.CostUpdated()

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        await self._note("DataTransfer", {"vendor_id": vendor_id, **kwargs})
        return result201.DataTransfer(status="Accepted", data=kwargs.get("data"))

    @on("ReserveNow")
    async def on_reserve_now(self, id: int, **kwargs: Any) -> Any:
        request = {"id": id, **kwargs}
        await self._note("ReserveNow", request)
        return result201.ReserveNow(status=self.memory.reserve(id, request))

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int, **kwargs: Any) -> Any:
        await self._note("CancelReservation", {"reservation_id": reservation_id})
        return result201.CancelReservation(
            status=self.memory.cancel_reservation(reservation_id)
        )


@dataclass
class Session:
    """One charging session as the station saw it."""

    transaction_id: str
    connector: int
    id_tag: str
    meter_start_wh: int
    meter_stop_wh: int = 0
    accepted: bool = True


class SimStation:
    """One simulated station; `async with SimStation(...)` connects and disconnects."""

    def __init__(
        self,
        base_url: str,
        station_id: str,
        *,
        protocol: str = PROTOCOL_16,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connectors: int = 1,
        vendor: str = "Volthaus",
        model: str = "SimBox",
        record_latency: Callable[[str, float], None] | None = None,
        ping_interval: float | None = 20,
        open_timeout: float = 30,
        check_schemas: bool = True,
        keep_received: bool = True,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/{station_id}"
        self.station_id = station_id
        self.protocol = protocol
        self.ssl_context = ssl_context
        self.connectors = connectors
        self.vendor = vendor
        self.model = model
        # Reported at boot; change it to act out a firmware update.
        self.firmware = "1.0.0"
        self.memory = StationMemory(password=password, keep_received=keep_received)
        self.record_latency = record_latency
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        # Off for load tests: the server checks every frame anyway, and the simulator's own
        # checks would make it, not the server, the bottleneck.
        self.check_schemas = check_schemas
        self.client: Client16 | Client201 | None = None
        self._reader: asyncio.Task[None] | None = None
        self.energy_wh = 0
        self._seq = 0
        self.heartbeat_interval = 300
        self.closed = asyncio.Event()
        # The station's clock, relative to real time: a compressed session (`time_scale` < 1)
        # runs it ahead so timestamps show the simulated durations the server bills.
        self.clock_offset_s = 0.0

    def compress_time(self, duration_s: float, time_scale: float) -> None:
        """Before a session of `duration_s` simulated seconds run at `time_scale` < 1: back-date
        the station clock, so the session ends near real time and its timestamps are in the
        past, as a station's are, never in the future."""
        if time_scale < 1:
            self.clock_offset_s -= duration_s

    async def wait(self, simulated_s: float, time_scale: float) -> None:
        """Let `simulated_s` pass on the station clock, sleeping only `time_scale` of it."""
        await asyncio.sleep(simulated_s * time_scale)
        if time_scale < 1:
            self.clock_offset_s += simulated_s * (1 - time_scale)

    def now_text(self) -> str:
        moment = datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # connection

    async def connect(self) -> None:
        headers = {}
        if self.memory.password is not None:
            token = base64.b64encode(f"{self.station_id}:{self.memory.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        connection = await connect(
            self.url,
            subprotocols=[self.protocol],  # type: ignore[list-item]
            additional_headers=headers,
            ssl=self.ssl_context,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            max_size=2**20,
        )
        cls = Client16 if self.protocol == PROTOCOL_16 else Client201
        self.client = cls(self.station_id, connection, self.memory)
        if not self.check_schemas:
            # What the server sends is not checked either: a 2,000-badge list costs the
            # simulator more to validate than the server to build and send.
            for handlers in self.client.route_map.values():
                handlers["_skip_schema_validation"] = True
        self.closed.clear()
        self._reader = asyncio.create_task(self._read(), name=f"sim-{self.station_id}")

    async def _read(self) -> None:
        assert self.client is not None
        try:
            await self.client.start()
        except (ConnectionClosed, asyncio.CancelledError):
            # ConnectionClosedOK is how the library reports a normal close.
            pass
        finally:
            self.closed.set()

    async def close(self) -> None:
        if self.client is not None:
            await self.client._connection.close()
        if self._reader is not None:
            # A handler may be stuck on purpose (hang_on): do not wait for it.
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self._reader
        self.closed.set()

    async def __aenter__(self) -> SimStation:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connection(self) -> ClientConnection:
        assert self.client is not None
        return self.client._connection

    async def _call(self, payload: Any) -> Any:
        assert self.client is not None, "connect() first"
        started = time.perf_counter()
        reply = await self.client.call(
            payload, suppress=False, skip_schema_validation=not self.check_schemas
        )
        if self.record_latency is not None:
            self.record_latency(type(payload).__name__, time.perf_counter() - started)
        return reply

    # station messages

    async def boot(self) -> str:
        if self.protocol == PROTOCOL_16:
            reply = await self._call(
                call16.BootNotification(
                    charge_point_model=self.model,
                    charge_point_vendor=self.vendor,
                    charge_point_serial_number=f"SN-{self.station_id}"[:25],
                    firmware_version=self.firmware,
                )
            )
        else:
            reply = await self._call(
                call201.BootNotification(
                    charging_station={
                        "model": self.model,
                        "vendor_name": self.vendor,
                        "serial_number": f"SN-{self.station_id}"[:25],
                        "firmware_version": self.firmware,
                    },
                    reason="PowerUp",
                )
            )
        self.heartbeat_interval = int(reply.interval)
        return str(reply.status)

    async def heartbeat(self) -> str:
        payload = call16.Heartbeat() if self.protocol == PROTOCOL_16 else call201.Heartbeat()
        reply = await self._call(payload)
        return str(reply.current_time)

    async def status(self, connector: int, status: str) -> None:
        if self.protocol == PROTOCOL_16:
            await self._call(
                call16.StatusNotification(
                    connector_id=connector,
                    error_code="NoError",
                    status=status,
                    timestamp=self.now_text(),
                )
            )
        else:
            status201 = {
                "Preparing": "Occupied",
                "Charging": "Occupied",
                "Finishing": "Occupied",
            }.get(status, status)
            await self._call(
                call201.StatusNotification(
                    timestamp=self.now_text(),
                    connector_status=status201,
                    evse_id=max(connector, 1),
                    connector_id=1,
                )
            )

    async def authorize(self, id_tag: str) -> str:
        if self.protocol == PROTOCOL_16:
            reply = await self._call(call16.Authorize(id_tag=id_tag))
            return str(reply.id_tag_info["status"])
        reply = await self._call(
            call201.Authorize(id_token={"id_token": id_tag, "type": "ISO14443"})
        )
        return str(reply.id_token_info["status"])

    def _sampled(self, power_w: float) -> list[dict[str, Any]]:
        if self.protocol == PROTOCOL_16:
            return [
                {
                    "value": str(self.energy_wh),
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                    "context": "Sample.Periodic",
                },
                {
                    "value": f"{power_w:.1f}",
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                    "context": "Sample.Periodic",
                },
            ]
        return [
            {
                "value": self.energy_wh,
                "measurand": "Energy.Active.Import.Register",
                "unit_of_measure": {"unit": "Wh"},
                "context": "Sample.Periodic",
            },
            {
                "value": round(power_w, 1),
                "measurand": "Power.Active.Import",
                "unit_of_measure": {"unit": "W"},
                "context": "Sample.Periodic",
            },
        ]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    async def start(
        self, id_tag: str, connector: int = 1, reservation_id: int | None = None
    ) -> Session:
        """Begin a transaction (after the badge was accepted or regardless, as stations do);
        with `reservation_id`, the reservation it ends."""
        if reservation_id is not None:
            self.memory.reservations.pop(reservation_id, None)
        if self.protocol == PROTOCOL_16:
            reply = await self._call(
                call16.StartTransaction(
                    connector_id=connector,
                    id_tag=id_tag,
                    meter_start=self.energy_wh,
                    timestamp=self.now_text(),
                    reservation_id=reservation_id,
                )
            )
            accepted = reply.id_tag_info["status"] == "Accepted"
            return Session(
                str(reply.transaction_id), connector, id_tag, self.energy_wh, accepted=accepted
            )
        transaction_id = f"{self.station_id}-{int(time.time() * 1000)}-{self._seq}"
        reply = await self._call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=self.now_text(),
                trigger_reason="Authorized",
                seq_no=self._next_seq(),
                transaction_info={"transaction_id": transaction_id, "charging_state": "Charging"},
                evse={"id": connector, "connector_id": 1},
                id_token={"id_token": id_tag, "type": "ISO14443"},
                reservation_id=reservation_id,
                meter_value=[
                    {
                        "timestamp": self.now_text(),
                        "sampled_value": [
                            {
                                "value": self.energy_wh,
                                "measurand": "Energy.Active.Import.Register",
                                "context": "Transaction.Begin",
                                "unit_of_measure": {"unit": "Wh"},
                            }
                        ],
                    }
                ],
            )
        )
        info = reply.id_token_info or {"status": "Accepted"}
        return Session(
            transaction_id, connector, id_tag, self.energy_wh, accepted=info["status"] == "Accepted"
        )

    async def reservation_ended(self, reservation_id: int, status: str = "Expired") -> None:
        """2.0.1 ReservationStatusUpdate: the station dropped a reservation (Expired, Removed)."""
        self.memory.reservations.pop(reservation_id, None)
        await self._call(call201.ReservationStatusUpdate(
            reservation_id=reservation_id, reservation_update_status=status))

    def drawn_w(self, connector: int, wanted_w: float, phases: int = 3) -> float:
        """What the car draws: what it wants, capped by the limit the CSMS set (0: paused)."""
        limit = self.memory.limit_a(connector)
        if limit is None:
            return wanted_w
        return min(wanted_w, limit * 230.0 * phases) if limit >= 6 else 0.0

    async def meter(self, session: Session, power_w: float, seconds: float) -> None:
        """Advance the register by `power_w` (as the station's limit allows) over `seconds`
        and report it."""
        power_w = self.drawn_w(session.connector, power_w)
        self.energy_wh += int(power_w * seconds / 3600)
        if self.protocol == PROTOCOL_16:
            await self._call(
                call16.MeterValues(
                    connector_id=session.connector,
                    transaction_id=int(session.transaction_id),
                    meter_value=[
                        {"timestamp": self.now_text(), "sampled_value": self._sampled(power_w)}
                    ],
                )
            )
        else:
            await self._call(
                call201.TransactionEvent(
                    event_type="Updated",
                    timestamp=self.now_text(),
                    trigger_reason="MeterValuePeriodic",
                    seq_no=self._next_seq(),
                    transaction_info={
                        "transaction_id": session.transaction_id,
                        "charging_state": "Charging",
                    },
                    meter_value=[
                        {"timestamp": self.now_text(), "sampled_value": self._sampled(power_w)}
                    ],
                )
            )

    async def stop(self, session: Session, reason: str = "Local") -> None:
        session.meter_stop_wh = self.energy_wh
        self.memory.tx_limits.pop(session.connector, None)  # a TxProfile ends with its session
        if self.protocol == PROTOCOL_16:
            await self._call(
                call16.StopTransaction(
                    meter_stop=self.energy_wh,
                    timestamp=self.now_text(),
                    transaction_id=int(session.transaction_id),
                    reason=reason,
                    id_tag=session.id_tag,
                )
            )
        else:
            await self._call(
                call201.TransactionEvent(
                    event_type="Ended",
                    timestamp=self.now_text(),
                    trigger_reason="StopAuthorized" if reason == "Local" else "RemoteStop",
                    seq_no=self._next_seq(),
                    transaction_info={
                        "transaction_id": session.transaction_id,
                        "charging_state": "Idle",
                        "stopped_reason": reason,
                    },
                    meter_value=[
                        {
                            "timestamp": self.now_text(),
                            "sampled_value": [
                                {
                                    "value": self.energy_wh,
                                    "measurand": "Energy.Active.Import.Register",
                                    "context": "Transaction.End",
                                    "unit_of_measure": {"unit": "Wh"},
                                }
                            ],
                        }
                    ],
                )
            )

    async def charge(
        self,
        id_tag: str,
        *,
        power_w: float,
        duration_s: float,
        interval_s: float,
        connector: int = 1,
        time_scale: float = 1.0,
    ) -> Session:
        """Badge, start, meter every `interval_s` (simulated seconds), stop.

        `time_scale` < 1 compresses real waiting (0.01: a 10 s interval passes in 0.1 s).
        """
        self.compress_time(duration_s, time_scale)
        await self.authorize(id_tag)
        await self.status(connector, "Preparing")
        session = await self.start(id_tag, connector)
        if not session.accepted:
            await self.status(connector, "Available")
            return session
        await self.status(connector, "Charging")
        elapsed = 0.0
        while elapsed + interval_s <= duration_s:
            await self.wait(interval_s, time_scale)
            elapsed += interval_s
            await self.meter(session, power_w, interval_s)
        await self.stop(session)
        await self.status(connector, "Finishing")
        await self.status(connector, "Available")
        return session
