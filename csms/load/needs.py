"""What a car says it needs (OCPP 2.0.1 NotifyEVChargingNeeds): energy, departure, its most
current. Parsed here (pure), stored per EVSE, weighed by the allocator (earliest departure
first within the site's strategy)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.load.models import ChargingNeed


def charging_need_of(station_id: str, payload: dict[str, Any], now: datetime) -> ChargingNeed:
    """The newest need of one EVSE from a NotifyEVChargingNeedsRequest (spec field names)."""
    needs = payload.get("chargingNeeds") or {}
    ac = needs.get("acChargingParameters") or {}
    dc = needs.get("dcChargingParameters") or {}
    departure = needs.get("departureTime")
    energy = ac.get("energyAmount", dc.get("energyAmount"))
    current = ac.get("evMaxCurrent", dc.get("evMaxCurrent"))
    return ChargingNeed(
        station_id=station_id,
        evse_id=int(payload["evseId"]),
        departure_at=datetime.fromisoformat(departure.replace("Z", "+00:00"))
        if isinstance(departure, str) else None,
        energy_wh=int(energy) if energy is not None else None,
        max_current_a=Decimal(str(current)) if current is not None else None,
        received_at=now,
    )
