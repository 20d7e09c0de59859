"""An OCPP station as a `billing.Device`: stop a use, show its cost; and the 1.6 connector states
that describe a session's usage beside its transaction messages.

What the driver sees depends on the station: 2.0.1 `CostUpdated` while charging (the final cost
goes in the Ended answer's `totalCost`); 1.6 stations configured for it the Open Charge
Alliance California Pricing `RunningCost` and `FinalCost` (DataTransfer); other 1.6 stations
nothing. A 2.0.1 running cost that a TransactionEvent changed does not come through here: the
session adapter puts it on the wire ahead of that event's answer (`sessions.BillingService`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import CostShown, Point, UseRef, effective_time
from csms.charging.cost_messages import cost_updated, final_cost, final_text, running_cost
from csms.charging.models import ChargingSession, ChargingStationConfig
from csms.ocpp.events import PROTOCOL_16
from csms.ocpp.models import StatusEvent

KIND = "charging"


class StationCommands(Protocol):
    """How billing reaches a station on whichever node holds it (`ocpp.commands.StationGateway`)."""

    async def call(
        self, station_id: str, action: str, payload: Any, *, timeout: float | None = None
    ) -> dict[str, Any]: ...

    async def remote_stop(self, station_id: str, station_tx_id: str) -> bool: ...


async def california_pricing(db: AsyncSession, station_id: str) -> bool:
    config = await db.get(ChargingStationConfig, station_id)
    return bool(config is not None and config.california_pricing)


class OcppCharger:
    """The `billing.Device` of OCPP stations (every station of this node's fleet)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        commands: StationCommands | None,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self.commands = commands
        self.timeout_s = timeout_s

    async def stop(self, use: UseRef) -> bool:
        if self.commands is None:
            return False
        return await self.commands.remote_stop(use.device_id, use.use_ref)

    async def show_cost(self, use: UseRef, cost: CostShown) -> None:
        if self.commands is None:
            return
        async with self._sessions() as db:
            session = (
                await db.exec(select(ChargingSession).where(col(ChargingSession.use_id) ==
                                                            use.use_id))
            ).first()
            if session is None:
                return
            california = (
                session.protocol == PROTOCOL_16
                and await california_pricing(db, use.device_id)
            )
        payload: dict[str, Any] | None = None
        action = "DataTransfer"
        if session.protocol != PROTOCOL_16:
            if cost.final:
                return  # the Ended answer's totalCost carries it
            action, payload = "CostUpdated", cost_updated(use.use_ref, cost.gross, cost.currency)
        elif california and cost.final:
            payload = final_cost(session.id, cost=cost.gross, currency=cost.currency,
                                 price_text=final_text(cost.gross, cost.currency, cost.language))
        elif california:
            payload = running_cost(session.id, at=cost.at, meter_wh=cost.register_wh or 0,
                                   cost=cost.gross, currency=cost.currency,
                                   charging=cost.running)
        if payload is not None:
            await self.commands.call(use.device_id, action, payload, timeout=self.timeout_s)


async def connector_states(
    db: AsyncSession, use: UseRef, start: datetime | None
) -> Iterable[Point]:
    """1.6: the connector's StatusNotifications during the session (2.0.1 sends its states in
    the transaction messages)."""
    session = (
        await db.exec(select(ChargingSession).where(col(ChargingSession.use_id) == use.use_id))
    ).first()
    if session is None or session.protocol != PROTOCOL_16 or session.connector_id is None:
        return []
    query = (
        select(StatusEvent)
        .where(col(StatusEvent.station_id) == session.station_id)
        .where(col(StatusEvent.connector_id) == session.connector_id)
    )
    if start is not None:
        # Received before the session began cannot describe it (station clocks aside).
        query = query.where(col(StatusEvent.received_at) >= start - timedelta(hours=1))
    result = []
    for status in (await db.exec(query)).all():
        arrival = status.received_at or status.timestamp
        if arrival is None:
            continue
        at, _ = effective_time(status.timestamp, arrival)
        result.append(Point(at, None, status.status))
    return result
