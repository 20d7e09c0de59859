"""OCPP 2.0.1: parse, call the station service, answer."""

from __future__ import annotations

from functools import partial
from typing import Any

from csms.ocpp.commands import FALLBACK_PROFILE_ID, TX_DEFAULT_PROFILE_BASE, TX_PROFILE_BASE
from csms.ocpp.configuration import settings_from_report
from csms.ocpp.connection import StationConnection, handles
from csms.ocpp.events import (
    PROTOCOL_201,
    AuthDecision,
    BootInfo,
    IdToken,
    MeterReading,
    MeterReport,
    Sample,
    SecurityEventReport,
    StatusReport,
    TransactionPhase,
)
from csms.ocpp.reservation_book import station_ended
from csms.ocpp.reservations import Ending
from csms.ocpp.wire import (
    energy_wh,
    minor_units,
    money_to_wire,
    normalise_quantity,
    parse_timestamp,
    to_decimal,
    to_plain,
    wire_timestamp,
)
from rfid.local_list import LocalListUpdate

_RESERVATION_ENDINGS = {"Removed": Ending.REMOVED, "Expired": Ending.EXPIRED}

_PHASES = {
    "Started": TransactionPhase.STARTED,
    "Updated": TransactionPhase.UPDATED,
    "Ended": TransactionPhase.ENDED,
}


def send_local_list_request(
    update: LocalListUpdate, token_type: str = "ISO14443"
) -> dict[str, Any]:
    """The SendLocalListRequest payload of a built list (the list is left out when empty, as
    the schema wants at least one item)."""
    items: list[dict[str, Any]] = []
    for entry in update.entries:
        item: dict[str, Any] = {"idToken": {"idToken": entry.id_tag, "type": token_type}}
        if entry.decision is not None:
            item["idTokenInfo"] = id_token_info(AuthDecision.for_list(entry.decision))
        items.append(item)
    payload: dict[str, Any] = {"versionNumber": update.version, "updateType": update.update_type}
    if items:
        payload["localAuthorizationList"] = items
    return payload


def id_token_info(decision: AuthDecision) -> dict[str, Any]:
    info: dict[str, Any] = {"status": decision.status.value}
    if decision.expires_at is not None:
        info["cacheExpiryDateTime"] = wire_timestamp(decision.expires_at)
    group = decision.group(36)
    if group is not None:
        info["groupIdToken"] = {"idToken": group, "type": "Central"}
    if decision.language is not None:
        info["language1"] = decision.language[:8]
    if decision.personal_message is not None:
        info["personalMessage"] = {
            "format": "UTF8",
            "content": decision.personal_message[:512],
            **({"language": decision.language[:8]} if decision.language else {}),
        }
    return info


def parse_readings(items: list[dict[str, Any]], max_samples: int) -> tuple[MeterReading, ...]:
    readings = []
    budget = max_samples
    for item in items:
        samples = []
        for raw in item.get("sampledValue", []):
            if budget <= 0:
                break
            budget -= 1
            value = to_decimal(raw.get("value"))
            if value is None:
                continue
            measurand = raw.get("measurand", "Energy.Active.Import.Register")
            unit_of_measure = raw.get("unitOfMeasure") or {}
            multiplier = unit_of_measure.get("multiplier", 0)
            if isinstance(multiplier, int) and -9 <= multiplier <= 9 and multiplier:
                value = value.scaleb(multiplier)
            value, unit = normalise_quantity(value, unit_of_measure.get("unit"), measurand)
            if unit == "Wh" and value < 0:
                # Energy only counts up from zero: a negative reading is a broken meter.
                continue
            samples.append(
                Sample(
                    measurand=measurand,
                    value=value,
                    unit=unit,
                    phase=raw.get("phase"),
                    location=raw.get("location"),
                    context=raw.get("context", "Sample.Periodic"),
                    wh=energy_wh(value) if unit == "Wh" else None,
                )
            )
        readings.append(MeterReading(parse_timestamp(item.get("timestamp")), tuple(samples)))
    return tuple(readings)


def _token(raw: dict[str, Any] | None) -> IdToken | None:
    if not raw or raw.get("type") == "NoAuthorization":
        return None
    return IdToken(raw["idToken"], raw.get("type"))


class Station201(StationConnection):
    protocol = PROTOCOL_201

    def _now(self) -> str:
        return wire_timestamp(self.service.clock())

    @handles("BootNotification")
    async def on_boot_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        station = payload["chargingStation"]
        info = BootInfo(
            vendor=station["vendorName"],
            model=station["model"],
            serial_number=station.get("serialNumber"),
            firmware_version=station.get("firmwareVersion"),
            reason=payload["reason"],
            payload=to_plain(payload),
        )
        decision = await self.booted(info)
        return {
            "status": decision.status.value,
            "currentTime": self._now(),
            "interval": decision.interval_s,
        }

    @handles("Heartbeat")
    async def on_heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.service.seen(self.station_id)
        return {"currentTime": self._now()}

    @handles("StatusNotification")
    async def on_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.status(
            self.station,
            StatusReport(
                evse_id=payload["evseId"],
                connector_id=payload["connectorId"],
                status=payload["connectorStatus"],
                timestamp=parse_timestamp(payload["timestamp"]),
            ),
            max_ids=self.limits.max_connectors,
        )
        return {}

    @handles("Authorize")
    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        token = payload["idToken"]
        decision = await self.service.authorize(
            self.station, IdToken(token["idToken"], token.get("type"))
        )
        return {"idTokenInfo": id_token_info(decision)}

    @handles("MeterValues")
    async def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.transactions.meter_values(
            self.station,
            MeterReport(
                evse_id=payload["evseId"],
                connector_id=None,
                station_tx_id=None,
                readings=parse_readings(payload["meterValue"], self.limits.max_samples),
            ),
        )
        return {}

    @handles("TransactionEvent")
    async def on_transaction_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        info = payload["transactionInfo"]
        evse = payload.get("evse") or {}
        token = _token(payload.get("idToken"))
        answer = await self.service.transactions.transaction_event(
            self.station,
            phase=_PHASES[payload["eventType"]],
            station_tx_id=info["transactionId"],
            seq_no=payload["seqNo"],
            trigger=payload["triggerReason"],
            timestamp=parse_timestamp(payload["timestamp"]),
            evse_id=evse.get("id"),
            connector_id=evse.get("connectorId"),
            token=token,
            charging_state=info.get("chargingState"),
            stop_reason=info.get("stoppedReason"),
            readings=parse_readings(payload.get("meterValue", []), self.limits.max_samples),
            payload=to_plain(payload),
            reservation_id=payload.get("reservationId"),
        )
        response: dict[str, Any] = {}
        # idTokenInfo only answers an idToken the station sent (E01.FR.xx).
        if answer.decision is not None and token is not None:
            response["idTokenInfo"] = id_token_info(answer.decision)
        if answer.total_cost is not None:
            response["totalCost"] = money_to_wire(answer.total_cost, minor_units(answer.currency))
        for action, call_payload in answer.ahead:
            self.call_ahead(action, call_payload)
        if payload.get("eventType") in ("Started", "Ended"):
            await self.service.announce(self.station.station_id, "transaction",
                                        {"event": payload.get("eventType")})
        return response

    @handles("DataTransfer")
    async def on_data_transfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "DataTransfer", to_plain(payload))
        return {"status": "UnknownVendorId"}

    @handles("SecurityEventNotification")
    async def on_security_event_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.security_event(
            self.station,
            SecurityEventReport(
                payload["type"], parse_timestamp(payload["timestamp"]), payload.get("techInfo")
            ),
        )
        return {}

    async def _store(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, action, to_plain(payload))
        return {}

    @handles("FirmwareStatusNotification")
    async def on_firmware_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("FirmwareStatusNotification", payload)

    @handles("LogStatusNotification")
    async def on_log_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("LogStatusNotification", payload)

    @handles("NotifyReport")
    async def on_notify_report(self, payload: dict[str, Any]) -> dict[str, Any]:
        settings = settings_from_report(payload)
        expected = self.report_received(
            int(payload["requestId"]), dict(settings), complete=not payload.get("tbc", False)
        )
        if settings and not expected:
            # A report somebody else asked for: what it says is the station's configuration too.
            await self.service.store_configuration(self.station_id, settings, replace=False)
        return await self._store("NotifyReport", payload)

    @handles("NotifyEvent")
    async def on_notify_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("NotifyEvent", payload)

    @handles("NotifyMonitoringReport")
    async def on_notify_monitoring_report(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("NotifyMonitoringReport", payload)

    @handles("NotifyChargingLimit")
    async def on_notify_charging_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("NotifyChargingLimit", payload)

    @handles("ClearedChargingLimit")
    async def on_cleared_charging_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("ClearedChargingLimit", payload)

    @handles("NotifyCustomerInformation")
    async def on_notify_customer_information(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("NotifyCustomerInformation", payload)

    @handles("NotifyDisplayMessages")
    async def on_notify_display_messages(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("NotifyDisplayMessages", payload)

    @handles("ReportChargingProfiles")
    async def on_report_charging_profiles(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("ReportChargingProfiles", payload)

    @handles("ReservationStatusUpdate")
    async def on_reservation_status_update(self, payload: dict[str, Any]) -> dict[str, Any]:
        ending = _RESERVATION_ENDINGS[payload["reservationUpdateStatus"]]
        now = self.service.clock()
        await self.service.batched(partial(
            station_ended, station_id=self.station_id,
            reservation_id=int(payload["reservationId"]), ending=ending, now=now))
        return await self._store("ReservationStatusUpdate", payload)

    @handles("PublishFirmwareStatusNotification")
    async def on_publish_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._store("PublishFirmwareStatusNotification", payload)

    @handles("NotifyEVChargingNeeds")
    async def on_notify_ev_charging_needs(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._store("NotifyEVChargingNeeds", payload)
        # Load management weighs the energy and departure time (earliest departure first);
        # the limits it sets follow as charging profiles (K15: Accepted, a schedule follows).
        await self.service.record_charging_need(self.station, to_plain(payload))
        return {"status": "Accepted"}

    @handles("NotifyEVChargingSchedule")
    async def on_notify_ev_charging_schedule(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._store("NotifyEVChargingSchedule", payload)
        return {"status": "Accepted"}

    @handles("SignCertificate")
    async def on_sign_certificate(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._store("SignCertificate", payload)
        # Accepted: CertificateSigned follows the answer (csms.ocpp.station_certificates).
        accepted = self.certificates is not None and await self.certificates.csr_received(
            self, payload["csr"], payload.get("certificateType"))
        return {"status": "Accepted" if accepted else "Rejected"}

    # outbound, version-neutral names

    async def remote_start(self, id_tag: str, evse_id: int | None = None) -> bool:
        payload: dict[str, Any] = {
            "idToken": {"idToken": id_tag, "type": "ISO14443"},
            "remoteStartId": self.next_request_id(),
        }
        if evse_id is not None:
            payload["evseId"] = evse_id
        reply = await self.call("RequestStartTransaction", payload)
        return bool(reply["status"] == "Accepted")

    async def remote_stop(self, station_tx_id: str) -> bool:
        reply = await self.call("RequestStopTransaction", {"transactionId": station_tx_id})
        return bool(reply["status"] == "Accepted")

    async def reset(self, hard: bool = False) -> bool:
        reply = await self.call("Reset", {"type": "Immediate" if hard else "OnIdle"})
        return bool(reply["status"] in ("Accepted", "Scheduled"))

    async def set_password(self, password: str) -> bool:
        reply = await self.call(
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": password,
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                    }
                ]
            },
        )
        results = reply.get("setVariableResult", [])
        return bool(results and results[0].get("attributeStatus") == "Accepted")

    async def get_local_list_version(self) -> int:
        reply = await self.call("GetLocalListVersion", {})
        return int(reply["versionNumber"])

    async def set_charging_limit(
        self, connector_id: int, limit_a: int | None, phases: int,
        transaction_id: str | None = None,
    ) -> bool:
        if limit_a is None:
            reply = await self.call("ClearChargingProfile", {
                "chargingProfileId": TX_DEFAULT_PROFILE_BASE + connector_id})
            await self.call("ClearChargingProfile", {
                "chargingProfileId": TX_PROFILE_BASE + connector_id})
            return bool(reply["status"] in ("Accepted", "Unknown"))
        profile: dict[str, Any] = {
            "id": (TX_PROFILE_BASE if transaction_id else TX_DEFAULT_PROFILE_BASE) + connector_id,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile" if transaction_id else "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": limit_a, "numberPhases": phases}]}],
        }
        if transaction_id:
            profile["transactionId"] = transaction_id
        reply = await self.call("SetChargingProfile", {
            "evseId": connector_id, "chargingProfile": profile})
        return bool(reply["status"] == "Accepted")

    async def set_fallback_limit(self, limit_a: int, phases: int, max_a: int) -> bool:
        def schedule(limit: int) -> list[dict[str, Any]]:
            return [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": limit, "numberPhases": phases}]}]

        cap = await self.call("SetChargingProfile", {"evseId": 0, "chargingProfile": {
            "id": FALLBACK_PROFILE_ID - 1, "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Relative", "chargingSchedule": schedule(max_a)}})
        fallback = await self.call("SetChargingProfile", {"evseId": 0, "chargingProfile": {
            "id": FALLBACK_PROFILE_ID, "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": schedule(limit_a)}})
        return bool(cap["status"] == "Accepted" and fallback["status"] == "Accepted")

    async def trigger_message(self, message: str, evse_id: int | None = None) -> str:
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse_id is not None:
            payload["evse"] = {"id": evse_id}
        reply = await self.call("TriggerMessage", payload)
        return str(reply["status"])

