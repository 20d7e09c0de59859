"""OCPP 1.6J (with the Security Whitepaper messages): parse, call the station service, answer."""

from __future__ import annotations

from typing import Any

from csms.ocpp.commands import FALLBACK_PROFILE_ID, TX_DEFAULT_PROFILE_BASE, TX_PROFILE_BASE
from csms.ocpp.connection import StationConnection, handles
from csms.ocpp.events import (
    PROTOCOL_16,
    AuthDecision,
    AuthStatus,
    BootInfo,
    IdToken,
    MeterReading,
    MeterReport,
    Sample,
    SecurityEventReport,
    StatusReport,
)
from csms.ocpp.wire import (
    energy_wh,
    normalise_quantity,
    parse_timestamp,
    to_decimal,
    to_plain,
    wire_timestamp,
)
from rfid.local_list import LocalListUpdate

_ID_TAG_STATUSES = {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}
# 1.6 has no status for these; what a 1.6 station should show instead.
_FALLBACK = {AuthStatus.NO_CREDIT: "Blocked", AuthStatus.NOT_AT_THIS_TIME: "Blocked"}


def send_local_list_request(update: LocalListUpdate) -> dict[str, Any]:
    """The SendLocalList.req payload of a built list (entries without standing are removed)."""
    items: list[dict[str, Any]] = []
    for entry in update.entries:
        item: dict[str, Any] = {"idTag": entry.id_tag}
        if entry.decision is not None:
            item["idTagInfo"] = id_tag_info(AuthDecision.for_list(entry.decision))
        items.append(item)
    return {
        "listVersion": update.version,
        "updateType": update.update_type,
        "localAuthorizationList": items,
    }


def id_tag_info(decision: AuthDecision) -> dict[str, Any]:
    status = decision.status.value
    if status not in _ID_TAG_STATUSES:
        status = _FALLBACK.get(decision.status, "Invalid")
    info: dict[str, Any] = {"status": status}
    if decision.expires_at is not None:
        info["expiryDate"] = wire_timestamp(decision.expires_at)
    group = decision.group(20)
    if group is not None:
        info["parentIdTag"] = group
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
            if raw.get("format") == "SignedData":
                continue
            value = to_decimal(raw.get("value"))
            if value is None:
                continue
            measurand = raw.get("measurand", "Energy.Active.Import.Register")
            value, unit = normalise_quantity(value, raw.get("unit"), measurand)
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


def _wh(value: Any) -> int:
    number = to_decimal(value)
    return energy_wh(number) if number is not None else 0


class Station16(StationConnection):
    protocol = PROTOCOL_16

    def _now(self) -> str:
        return wire_timestamp(self.service.clock())

    @handles("BootNotification")
    async def on_boot_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        info = BootInfo(
            vendor=payload["chargePointVendor"],
            model=payload["chargePointModel"],
            serial_number=payload.get("chargePointSerialNumber")
            or payload.get("chargeBoxSerialNumber"),
            firmware_version=payload.get("firmwareVersion"),
            reason=None,
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
        connector = payload["connectorId"]
        error = payload.get("errorCode")
        await self.service.status(
            self.station,
            StatusReport(
                evse_id=connector,
                connector_id=connector,
                status=payload["status"],
                timestamp=parse_timestamp(payload.get("timestamp")),
                error_code=None if error == "NoError" else error,
                info=payload.get("info") or payload.get("vendorErrorCode"),
            ),
            max_ids=self.limits.max_connectors,
        )
        return {}

    @handles("Authorize")
    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        decision = await self.service.authorize(self.station, IdToken(payload["idTag"]))
        return {"idTagInfo": id_tag_info(decision)}

    @handles("MeterValues")
    async def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector = payload["connectorId"]
        tx = payload.get("transactionId")
        await self.service.transactions.meter_values(
            self.station,
            MeterReport(
                evse_id=connector,
                connector_id=connector,
                station_tx_id=str(tx) if tx is not None else None,
                readings=parse_readings(payload["meterValue"], self.limits.max_samples),
            ),
        )
        return {}

    @handles("StartTransaction")
    async def on_start_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        transaction_id, decision = await self.service.transactions.start_transaction(
            self.station,
            connector_id=payload["connectorId"],
            token=IdToken(payload["idTag"]),
            meter_start_wh=_wh(payload["meterStart"]),
            timestamp=parse_timestamp(payload["timestamp"]),
            reservation_id=payload.get("reservationId"),
            payload=to_plain(payload),
        )
        await self.service.announce(self.station.station_id, "transaction", {"started": True})
        return {"transactionId": transaction_id, "idTagInfo": id_tag_info(decision)}

    @handles("StopTransaction")
    async def on_stop_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        tag = payload.get("idTag")
        decision = await self.service.transactions.stop_transaction(
            self.station,
            transaction_id=payload["transactionId"],
            token=IdToken(tag) if tag else None,
            meter_stop_wh=_wh(payload["meterStop"]),
            timestamp=parse_timestamp(payload["timestamp"]),
            reason=payload.get("reason", "Local"),
            readings=parse_readings(payload.get("transactionData", []), self.limits.max_samples),
            payload=to_plain(payload),
        )
        await self.service.announce(self.station.station_id, "transaction", {"ended": True})
        return {"idTagInfo": id_tag_info(decision)} if decision is not None else {}

    @handles("DataTransfer")
    async def on_data_transfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "DataTransfer", to_plain(payload))
        # We define no vendor extensions; the spec's answer for that is UnknownVendorId.
        return {"status": "UnknownVendorId"}

    @handles("FirmwareStatusNotification")
    async def on_firmware_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "FirmwareStatusNotification", payload)
        return {}

    @handles("DiagnosticsStatusNotification")
    async def on_diagnostics_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "DiagnosticsStatusNotification", payload)
        return {}

    @handles("SignedFirmwareStatusNotification")
    async def on_signed_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "SignedFirmwareStatusNotification", payload)
        return {}

    @handles("LogStatusNotification")
    async def on_log_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "LogStatusNotification", payload)
        return {}

    @handles("SecurityEventNotification")
    async def on_security_event_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.security_event(
            self.station,
            SecurityEventReport(
                payload["type"], parse_timestamp(payload["timestamp"]), payload.get("techInfo")
            ),
        )
        return {}

    @handles("SignCertificate")
    async def on_sign_certificate(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.service.store_message(self.station, "SignCertificate", payload)
        # Accepted: CertificateSigned follows the answer (csms.ocpp.station_certificates).
        accepted = self.certificates is not None and await self.certificates.csr_received(
            self, payload["csr"])
        return {"status": "Accepted" if accepted else "Rejected"}

    # outbound, version-neutral names

    async def remote_start(self, id_tag: str, evse_id: int | None = None) -> bool:
        payload: dict[str, Any] = {"idTag": id_tag}
        if evse_id is not None:
            payload["connectorId"] = evse_id
        reply = await self.call("RemoteStartTransaction", payload)
        return bool(reply["status"] == "Accepted")

    async def remote_stop(self, station_tx_id: str) -> bool:
        reply = await self.call("RemoteStopTransaction", {"transactionId": int(station_tx_id)})
        return bool(reply["status"] == "Accepted")

    async def reset(self, hard: bool = False) -> bool:
        reply = await self.call("Reset", {"type": "Hard" if hard else "Soft"})
        return bool(reply["status"] == "Accepted")

    async def set_password(self, password: str) -> bool:
        # Security Whitepaper: AuthorizationKey is the Basic-auth password (write-only there).
        reply = await self.call(
            "ChangeConfiguration", {"key": "AuthorizationKey", "value": password}
        )
        return bool(reply["status"] == "Accepted")

    async def get_local_list_version(self) -> int:
        reply = await self.call("GetLocalListVersion", {})
        return int(reply["listVersion"])

    async def set_charging_limit(
        self, connector_id: int, limit_a: int | None, phases: int,
        transaction_id: str | None = None,
    ) -> bool:
        if limit_a is None:
            reply = await self.call("ClearChargingProfile", {
                "id": TX_DEFAULT_PROFILE_BASE + connector_id})
            await self.call("ClearChargingProfile", {"id": TX_PROFILE_BASE + connector_id})
            return bool(reply["status"] in ("Accepted", "Unknown"))
        profile: dict[str, Any] = {
            "chargingProfileId": (TX_PROFILE_BASE if transaction_id else TX_DEFAULT_PROFILE_BASE)
            + connector_id,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile" if transaction_id else "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": limit_a, "numberPhases": phases}]},
        }
        if transaction_id:
            profile["transactionId"] = int(transaction_id)
        reply = await self.call("SetChargingProfile", {
            "connectorId": connector_id, "csChargingProfiles": profile})
        return bool(reply["status"] == "Accepted")

    async def set_fallback_limit(self, limit_a: int, phases: int, max_a: int) -> bool:
        def schedule(limit: int) -> dict[str, Any]:
            return {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": limit, "numberPhases": phases}]}

        cap = await self.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": {
            "chargingProfileId": FALLBACK_PROFILE_ID - 1, "stackLevel": 0,
            "chargingProfilePurpose": "ChargePointMaxProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": schedule(max_a)}})
        fallback = await self.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": {
            "chargingProfileId": FALLBACK_PROFILE_ID, "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": schedule(limit_a)}})
        return bool(cap["status"] == "Accepted" and fallback["status"] == "Accepted")

    async def trigger_message(self, message: str, evse_id: int | None = None) -> str:
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse_id is not None:
            payload["connectorId"] = evse_id
        reply = await self.call("TriggerMessage", payload)
        return str(reply["status"])

