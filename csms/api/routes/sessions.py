"""Charging sessions over HTTP: list and filter, one session with its usage, a staff stop for a
session stuck open, a CSV export per month, and the per-station charging settings.

Owners (and admins) see their site's sessions; residents see their own account's only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col

from billing import PaidUse, usage_document
from csms.api.deps import DbSession, Principal, require_roles, site_account
from csms.api.problems import SITE_AMBIGUOUS, problem_responses
from csms.charging.models import ChargingSession, ChargingStationConfig, SessionStatus
from csms.charging.sessions import BillingService, session_usage
from csms.charging.views import SessionView, session_view, session_views, sessions_query
from csms.inventory.models import Site, Station
from wallet.accounts import refs_of

router = APIRouter(tags=["sessions"])
CENT = Decimal("0.01")

Staff = Annotated[Principal, Depends(require_roles("admin", "owner"))]
Reader = Annotated[Principal, Depends(require_roles("admin", "owner", "installer", "resident"))]


class SessionPublic(BaseModel):
    id: int
    station_id: str
    transaction_id: str
    site_id: str
    account_id: str | None = Field(description="the account's id on the site")
    id_tag: str | None
    status: str
    authorization: str | None
    started_at: datetime | None
    ended_at: datetime | None
    energy_wh: int
    duration_s: int
    idle_s: int
    currency: str
    cost: Decimal | None = Field(description="final gross when completed, else the live cost")
    net: Decimal | None
    vat: Decimal | None
    gross: Decimal | None
    free: bool
    lines: list[dict[str, Any]]
    stop_reason: str | None
    flags: list[str]

    @classmethod
    def of(cls, row: SessionView, refs: dict[str, str]) -> SessionPublic:
        """`refs` maps internal account keys to the site's ids (`wallet.accounts.refs_of`)."""
        return cls(
            id=row.id, station_id=row.station_id, transaction_id=row.station_tx_id,
            site_id=row.site_id, account_id=refs.get(row.account_id or "", row.account_id),
            id_tag=row.id_tag,
            status=row.status, authorization=row.auth_status, started_at=row.started_at,
            ended_at=row.ended_at, energy_wh=row.energy_wh, duration_s=row.duration_s,
            idle_s=row.idle_s, currency=row.currency,
            cost=_cents(row.gross if row.status == SessionStatus.COMPLETED else row.live_gross),
            net=row.net, vat=row.vat, gross=_cents(row.gross), free=row.free, lines=row.lines,
            stop_reason=row.stop_reason, flags=row.flags,
        )


def _cents(amount: Decimal | None) -> Decimal | None:
    # Gross amounts are whole cents (tariff.md); storage keeps four places.
    return amount.quantize(CENT) if amount is not None else None


class SessionDetail(SessionPublic):
    usage: dict[str, Any] | None = Field(description="the rated usage (`volthaus price` input)")
    tariff: dict[str, Any]


class ChargingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    california_pricing: bool = False
    reboot_close_after_s: int = Field(0, ge=0, le=7 * 86400)
    silent_close_after_s: int | None = Field(None, ge=60, le=30 * 86400)


async def _scope(
    session: DbSession, principal: Principal, site: str | None, account: str | None
) -> tuple[str | None, str | None]:
    """The site and account (internal key) a caller may list: a resident only their own
    account; an admin without a site sees every site. `account` is the id on the site."""
    site_id = site or principal.site_id
    if site_id is None and principal.role != "admin":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "site: required")
    if site_id is not None:
        principal.ensure_site(site_id)
    if principal.role == "resident":
        account = account or principal.account_ref
    if account is None:
        return site_id, None
    return site_id, (await site_account(session, principal, account, site_id)).id


async def _public(session: DbSession, rows: Sequence[SessionView]) -> list[SessionPublic]:
    refs = await refs_of(session, [row.account_id for row in rows if row.account_id])
    return [SessionPublic.of(row, refs) for row in rows]


@router.get("/sessions", summary="Charging sessions (a resident: their own)",
            responses=problem_responses(404, 409, why_404="no such account",
                                        why_409=SITE_AMBIGUOUS))
async def list_sessions(
    session: DbSession,
    principal: Reader,
    site: str | None = None,
    station: str | None = None,
    account: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    started_from: Annotated[datetime | None, Query(alias="from")] = None,
    started_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SessionPublic]:
    site_id, account = await _scope(session, principal, site, account)
    for name, value in (("from", started_from), ("to", started_to)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"{name}: give a UTC offset")
    query = sessions_query()
    if site_id is not None:
        query = query.where(col(PaidUse.site_id) == site_id)
    if station is not None:
        query = query.where(col(ChargingSession.station_id) == station)
    if account is not None:
        query = query.where(col(PaidUse.account_id) == account)
    if status_ is not None:
        query = query.where(col(PaidUse.status) == status_)
    if started_from is not None:
        query = query.where(col(PaidUse.started_at) >= started_from)
    if started_to is not None:
        query = query.where(col(PaidUse.started_at) < started_to)
    rows = await session_views(
        session, query.order_by(col(ChargingSession.id).desc()).limit(limit)
    )
    return await _public(session, rows)


@router.get("/sessions/export.csv", summary="A month of a site's sessions as CSV",
            responses=problem_responses(404, why_404="no such site"))
async def export_sessions(
    session: DbSession,
    principal: Staff,
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM, site time")],
    site: str | None = None,
) -> Response:
    site_id, _ = await _scope(session, principal, site, None)
    if site_id is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "site: required")
    row_site = await session.get(Site, site_id)
    if row_site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    year, number = (int(part) for part in month.split("-"))
    if not 1 <= number <= 12:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "month: 01 to 12")
    zone = ZoneInfo(row_site.timezone)
    first = datetime.combine(date(year, number, 1), datetime.min.time(), zone)
    following = date(year + number // 12, number % 12 + 1, 1)
    last = datetime.combine(following, datetime.min.time(), zone)
    rows = await session_views(
        session,
        sessions_query()
        .where(col(PaidUse.site_id) == site_id)
        .where(col(PaidUse.started_at) >= first)
        .where(col(PaidUse.started_at) < last)
        .order_by(col(PaidUse.started_at), col(ChargingSession.id)),
    )
    refs = await refs_of(session, [row.account_id for row in rows if row.account_id])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["session", "station", "transaction", "account", "id_tag", "status",
                     "started", "ended", "energy_wh", "duration_s", "idle_s", "currency",
                     "net", "vat", "gross", "free", "flags"])
    for row in rows:
        writer.writerow([
            row.id, row.station_id, row.station_tx_id,
            refs.get(row.account_id, row.account_id) if row.account_id else "", row.id_tag or "",
            row.status, _local(row.started_at, zone), _local(row.ended_at, zone),
            row.energy_wh, row.duration_s, row.idle_s, row.currency,
            row.net if row.net is not None else "", row.vat if row.vat is not None else "",
            _cents(row.gross) if row.gross is not None else "", "yes" if row.free else "no",
            " ".join(row.flags),
        ])
    filename = f"sessions-{site_id}-{month}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat() if moment is not None else ""


async def _visible(session: DbSession, principal: Principal, session_id: int) -> SessionView:
    row = await session_view(session, session_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id}")
    principal.ensure_site(row.site_id)
    if principal.role == "resident" and row.account_id != principal.account_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id}")
    return row


@router.get("/sessions/{session_id}", summary="One session with its usage")
async def get_session(session_id: int, session: DbSession, principal: Reader) -> SessionDetail:
    row = await _visible(session, principal, session_id)
    built = await session_usage(session, row.use)
    return SessionDetail(
        **(await _public(session, [row]))[0].model_dump(),
        usage=usage_document(built.usage) if built is not None else None,
        tariff=row.tariff,
    )


@router.post(
    "/sessions/{session_id}/stop",
    summary="Close a session stuck open from its last meter value, and settle it",
    responses={409: {"description": "the session is not open"}},
)
async def stop_session(
    session_id: int, request: Request, session: DbSession, principal: Staff
) -> SessionPublic:
    await _visible(session, principal, session_id)
    await session.rollback()  # the billing service takes the row lock in its own transaction
    billing: BillingService = request.app.state.billing
    if not await billing.close(session_id, flag="closed_by_staff",
                               staff=f"{principal.role}:{principal.token_id}"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"session {session_id} is not open")
    row = await session_view(session, session_id, fresh=True)
    assert row is not None
    return (await _public(session, [row]))[0]


@router.put("/stations/{station_id}/charging", summary="How billing treats a station")
async def put_charging_settings(
    station_id: str, body: ChargingSettings, session: DbSession, principal: Staff
) -> ChargingSettings:
    station = await session.get(Station, station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id}")
    principal.ensure_site(station.site_id)
    config = await session.get(ChargingStationConfig, station_id)
    if config is None:
        config = ChargingStationConfig(station_id=station_id)
    config.california_pricing = body.california_pricing
    config.reboot_close_after_s = body.reboot_close_after_s
    config.silent_close_after_s = body.silent_close_after_s
    session.add(config)
    await session.commit()
    return body
