"""A charging session as people see it: the OCPP session and its paid use read together (the
API, the CLI and tests read sessions through here, never the two tables apart)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import PaidUse
from csms.charging.models import ChargingSession


@dataclass(frozen=True, slots=True)
class SessionView:
    session: ChargingSession
    use: PaidUse

    @property
    def id(self) -> int:
        return self.session.id

    @property
    def use_id(self) -> int:
        return self.session.use_id

    @property
    def station_id(self) -> str:
        return self.session.station_id

    @property
    def station_tx_id(self) -> str:
        return self.session.station_tx_id

    @property
    def protocol(self) -> str:
        return self.session.protocol

    @property
    def connector_id(self) -> int | None:
        return self.session.connector_id

    @property
    def evse_id(self) -> int | None:
        return self.session.evse_id

    @property
    def site_id(self) -> str:
        return self.use.site_id

    @property
    def account_id(self) -> str | None:
        return self.use.account_id

    @property
    def id_tag(self) -> str | None:
        return self.use.id_tag

    @property
    def auth_status(self) -> str | None:
        return self.use.auth_status

    @property
    def tariff_id(self) -> str:
        return self.use.tariff_id

    @property
    def tariff(self) -> dict[str, Any]:
        return self.use.tariff

    @property
    def currency(self) -> str:
        return self.use.currency

    @property
    def status(self) -> str:
        return self.use.status

    @property
    def started_at(self) -> datetime | None:
        return self.use.started_at

    @property
    def ended_at(self) -> datetime | None:
        return self.use.ended_at

    @property
    def stop_reason(self) -> str | None:
        return self.use.stop_reason

    @property
    def meter_start_wh(self) -> int | None:
        return self.session.meter_start_wh

    @property
    def meter_last_wh(self) -> int | None:
        return self.use.last_register_wh

    @property
    def energy_wh(self) -> int:
        return self.use.energy_wh

    @property
    def duration_s(self) -> int:
        return self.use.duration_s

    @property
    def idle_s(self) -> int:
        return self.use.idle_s

    @property
    def hold_id(self) -> str | None:
        return self.use.hold_id

    @property
    def free(self) -> bool:
        return self.use.free

    @property
    def live_gross(self) -> Decimal | None:
        return self.use.live_gross

    @property
    def net(self) -> Decimal | None:
        return self.use.net

    @property
    def vat(self) -> Decimal | None:
        return self.use.vat

    @property
    def gross(self) -> Decimal | None:
        return self.use.gross

    @property
    def lines(self) -> list[dict[str, Any]]:
        return self.use.lines

    @property
    def entry_id(self) -> str | None:
        return self.use.entry_id

    @property
    def billed_at(self) -> datetime | None:
        return self.use.billed_at

    @property
    def stop_requested_at(self) -> datetime | None:
        return self.use.stop_requested_at

    @property
    def stop_requests(self) -> int:
        return self.use.stop_requests

    @property
    def flags(self) -> list[str]:
        return self.use.flags


def sessions_query() -> Any:
    """Sessions with their uses; filter on `PaidUse` columns for the money side."""
    return select(ChargingSession, PaidUse).join(
        PaidUse, col(PaidUse.id) == ChargingSession.use_id
    )


async def session_views(db: AsyncSession, query: Any) -> list[SessionView]:
    return [SessionView(session, use) for session, use in (await db.exec(query)).all()]


async def session_view(
    db: AsyncSession, session_id: int, *, fresh: bool = False
) -> SessionView | None:
    query = sessions_query().where(col(ChargingSession.id) == session_id)
    if fresh:
        query = query.execution_options(populate_existing=True)
    found = await session_views(db, query)
    return found[0] if found else None
