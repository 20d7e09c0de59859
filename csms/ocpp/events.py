"""What stations say, in our own version-neutral types.

The `v16` and `v201` handler classes parse payloads into these; the station service and the
session hook (billing, a later issue) never see OCPP dictionaries or version differences.
Energy is integer Wh, other quantities exact `Decimal` in their base unit, times UTC-aware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from billing import DeviceRef
from rfid.authorisation import AuthStatus as AuthStatus  # the one status, rfid's
from rfid.authorisation import Decision, group_token

PROTOCOL_16 = "ocpp1.6"
PROTOCOL_201 = "ocpp2.0.1"
PROTOCOLS = (PROTOCOL_16, PROTOCOL_201)




@dataclass(frozen=True, slots=True)
class AuthDecision:
    """Whether an idTag may charge, and whose account pays (None if nobody)."""

    status: AuthStatus
    account_id: str | None = None
    expires_at: datetime | None = None
    group_id: str | None = None
    reason: str | None = None
    # Shown to the driver (2.0.1 personalMessage), e.g. the tariff in the account's language.
    personal_message: str | None = None
    language: str | None = None
    # A refusal that stands whatever the use's own standing says (a master pass starting).
    final: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is AuthStatus.ACCEPTED

    def group(self, max_length: int) -> str | None:
        """The badge's group on the wire (1.6 parentIdTag, 2.0.1 groupIdToken): its household,
        as the local list names it (`group_token`)."""
        if self.group_id is not None:
            return self.group_id[:max_length]
        if self.account_id is not None:
            return group_token(self.account_id, max_length)
        return None

    @classmethod
    def for_list(cls, decision: Decision) -> AuthDecision:
        """A local-list entry's standing: rfid's decision; its group is the badge's account
        (`group`), as in every other answer."""
        expires = decision.valid_until if decision.accepted else None
        return cls(decision.status, account_id=decision.account_id, expires_at=expires,
                   reason=decision.reason)


@dataclass(frozen=True, slots=True)
class StationRef:
    """The station a message came from, as the inventory knows it."""

    station_id: str
    site_id: str
    protocol: str
    idtag_format: str
    tariff_id: str | None  # None: not approved with a tariff yet, bills nothing
    connectors: int
    # The site's IANA timezone (local days, friendly windows), read when the station connected.
    timezone: str = "UTC"
    # Where the station stands (for the badge clone check); None: somewhere on the site.
    building_id: str | None = None
    # The most one connector delivers (W): the plausibility limit of a session's energy.
    max_power_w: int | None = None
    # The site's rules for badges, read with the station when it connected: how many uses one
    # badge runs at once, and the account whose badges are the master pass (its ref).
    max_uses_per_badge: int = 1
    master_pass_account: str | None = None

    def device(self) -> DeviceRef:
        """The station as billing's paid-use flow sees it (its uses are charging sessions)."""
        location = f"{self.site_id}/{self.building_id}" if self.building_id else self.site_id
        return DeviceRef(
            kind="charging", device_id=self.station_id, site_id=self.site_id,
            tariff_id=self.tariff_id, idtag_format=self.idtag_format, timezone=self.timezone,
            location=location, max_power_w=self.max_power_w,
            max_uses_per_badge=self.max_uses_per_badge,
        )


@dataclass(frozen=True, slots=True)
class BootInfo:
    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str | None
    reason: str | None
    payload: dict[str, Any]


class BootStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: BootStatus
    interval_s: int


@dataclass(frozen=True, slots=True)
class StatusReport:
    """1.6 StatusNotification (evse_id == connector_id) or 2.0.1 (EVSE and connector)."""

    evse_id: int
    connector_id: int
    status: str
    timestamp: datetime | None
    error_code: str | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled value: `value` exact in the base unit; `wh` set for energy registers."""

    measurand: str
    value: Decimal
    unit: str
    phase: str | None = None
    location: str | None = None
    context: str | None = None
    wh: int | None = None


@dataclass(frozen=True, slots=True)
class MeterReading:
    """All samples taken at one instant."""

    timestamp: datetime | None
    samples: tuple[Sample, ...]

    def energy_wh(self) -> int | None:
        """The active energy import register (no phase), the value billing uses."""
        for sample in self.samples:
            if (
                sample.measurand == "Energy.Active.Import.Register"
                and sample.phase is None
                and sample.wh is not None
            ):
                return sample.wh
        return None


@dataclass(frozen=True, slots=True)
class MeterReport:
    """MeterValues (both versions) or the meterValue of a TransactionEvent."""

    evse_id: int | None
    connector_id: int | None
    station_tx_id: str | None
    readings: tuple[MeterReading, ...]


@dataclass(frozen=True, slots=True)
class IdToken:
    """As the station sent it: 1.6 idTag (type None) or 2.0.1 idToken + type."""

    value: str
    type: str | None = None


class TransactionPhase(StrEnum):
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """A transaction message of either version, after it was stored.

    `transaction_id` is our row id (and the 1.6 transactionId); `station_tx_id` what the station
    calls it. `message_key` is unique per message and stable across retransmissions: use it as
    the cause of any money movement.
    """

    station: StationRef
    phase: TransactionPhase
    transaction_id: int
    station_tx_id: str
    message_key: str
    timestamp: datetime | None
    evse_id: int | None
    connector_id: int | None
    id_token: IdToken | None
    meter_wh: int | None
    trigger: str | None = None
    stop_reason: str | None = None
    charging_state: str | None = None
    readings: tuple[MeterReading, ...] = ()
    duplicate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecurityEventReport:
    type: str
    timestamp: datetime | None
    tech_info: str | None


@dataclass(frozen=True, slots=True)
class TransactionAnswer:
    """What the session hook adds to the answer of a transaction message.

    `decision` replaces the authorizer's idTagInfo / idTokenInfo; `total_cost` (gross, in
    `currency`) becomes the 2.0.1 `totalCost`, encoded by `wire.money_to_wire` only. `ahead` are
    CALLs (action, payload) the station is to receive before this answer, e.g. the 2.0.1
    `CostUpdated` of the cost the message changed: a station that acts on the answer (its
    display, its next message) has seen them already.
    """

    decision: AuthDecision | None = None
    total_cost: Decimal | None = None
    currency: str | None = None
    ahead: tuple[tuple[str, dict[str, Any]], ...] = ()
