"""What installers change about a station's OCPP side; functions on a session (any node)."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Station, Tariff
from csms.ocpp.models import ConnectorStatus, OcppStation


class StationNotFound(LookupError):
    def __init__(self, station_id: str) -> None:
        super().__init__(f"unknown station {station_id!r}")
        self.station_id = station_id


async def get_station(session: AsyncSession, station_id: str) -> Station:
    station = await session.get(Station, station_id)
    if station is None:
        raise StationNotFound(station_id)
    return station


class ApprovalError(ValueError):
    """An approval that cannot be: the message starts with the field it is about (`tariff`)."""


async def approve_station(
    session: AsyncSession, station_id: str, tariff_id: str | None = None
) -> bool:
    """Accept a station at its next boot, billed with `tariff_id` (a tariff of its site); False
    if it was not pending. An auto-registered station has no tariff, so its approval must name
    one; a station that has one keeps it unless another is named.

    Flushes, does not commit.
    """
    station = await get_station(session, station_id)
    if tariff_id is None and station.tariff_id is None:
        raise ApprovalError(
            f"tariff: required: station {station_id!r} has no tariff yet "
            f"(tariffs of site {station.site_id!r}: {await _site_tariffs(session, station)})"
        )
    if tariff_id is not None:
        if await session.get(Tariff, (station.site_id, tariff_id)) is None:
            raise ApprovalError(
                f"tariff: unknown tariff {tariff_id!r} on site {station.site_id!r} "
                f"(tariffs: {await _site_tariffs(session, station)})"
            )
        station.tariff_id = tariff_id
    was_pending = station.pending_approval
    station.pending_approval = False
    await session.flush()
    return was_pending


async def _site_tariffs(session: AsyncSession, station: Station) -> str:
    ids = (
        await session.exec(
            select(Tariff.id).where(Tariff.site_id == station.site_id).order_by(col(Tariff.id))
        )
    ).all()
    return ", ".join(ids) if ids else "none"


async def set_boot_pending(session: AsyncSession, station_id: str, pending: bool) -> bool:
    """Hold a known station in Pending at its next boots (re-commissioning), or let its next
    boot be accepted again; returns what it was. Flushes."""
    station = await get_station(session, station_id)
    was = station.boot_pending
    station.boot_pending = pending
    await session.flush()
    return was


async def set_send_after_boot(session: AsyncSession, station_id: str, enabled: bool) -> None:
    """The per-station switch for everything the server sends on its own after a boot."""
    await get_station(session, station_id)
    state = await session.get(OcppStation, station_id)
    if state is None:
        state = OcppStation(station_id=station_id)
        session.add(state)
    state.send_after_boot = enabled
    await session.flush()


async def pending_stations(session: AsyncSession, site_id: str | None = None) -> list[Station]:
    query = select(Station).where(col(Station.pending_approval))
    if site_id is not None:
        query = query.where(Station.site_id == site_id)
    return list((await session.exec(query.order_by(col(Station.id)))).all())


async def station_overview(session: AsyncSession, station_id: str) -> dict[str, Any]:
    """Inventory, live state and connector statuses, for the API and the CLI."""
    station = await get_station(session, station_id)
    state = await session.get(OcppStation, station_id)
    connectors = (
        await session.exec(
            select(ConnectorStatus)
            .where(ConnectorStatus.station_id == station_id)
            .order_by(col(ConnectorStatus.evse_id), col(ConnectorStatus.connector_id))
        )
    ).all()
    return {
        "id": station.id,
        "site_id": station.site_id,
        "protocol": station.protocol,
        "security_profile": station.security_profile,
        "pending_approval": station.pending_approval,
        "tariff": station.tariff_id,
        "connected": bool(state and state.connected),
        "boot_status": state.boot_status if state else None,
        "send_after_boot": state.send_after_boot if state else True,
        "local_list_version": state.local_list_version if state else None,
        "vendor": state.vendor if state else None,
        "model": state.model if state else None,
        "firmware_version": state.firmware_version if state else None,
        "configuration": state.configuration if state else None,
        "configuration_read_at": (
            state.configuration_read_at.isoformat()
            if state and state.configuration_read_at else None
        ),
        "last_seen_at": state.last_seen_at.isoformat() if state and state.last_seen_at else None,
        "connectors": [
            {
                "evse_id": c.evse_id,
                "connector_id": c.connector_id,
                "status": c.status,
                "error_code": c.error_code,
                "since": c.timestamp.isoformat() if c.timestamp else None,
            }
            for c in connectors
        ],
    }
