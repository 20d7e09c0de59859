"""Apartment meters over HTTP (devices.md, "Meters"): a meter's state and last reading, its
stored readings, every meter of a site for its staff, and meter exchanges recorded by
installers.

A meter's id is unique across the installation. Staff of the meter's site see it, and so does
the household it bills (a resident token of that account); another household gets 403, a token
of another site 403, an unknown id 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import col, select

from csms.api.deps import DbSession, Principal, request_now, require_roles
from csms.api.problems import invalid
from csms.inventory.models import Site
from meters.consumption import meter_days, supply_forecast
from meters.models import Meter, MeterReading, MeterState, SupplySwitch
from meters.plausibility import MAX_REGISTER_WH
from meters.readings import (
    ExchangeError,
    latest_readings,
    meter_state,
    readings,
    record_exchange,
)
from wallet.accounts import refs_of

router = APIRouter(tags=["meters"])

Viewer = Annotated[
    Principal, Depends(require_roles("admin", "owner", "installer", "resident"))]
Staff = Annotated[Principal, Depends(require_roles("admin", "owner", "installer"))]
Installer = Annotated[Principal, Depends(require_roles("admin", "installer"))]

#: Shown among a meter's flags while its polls fail (not stored: `meter_state.failures`).
UNREACHABLE = "unreachable"


class LastReading(BaseModel):
    at: datetime
    energy_import_wh: int | None = Field(description="the register in Wh; null: it held NaN")
    power_w: int | None


class MeterPublic(BaseModel):
    id: str
    account: str = Field(description="the account's id on the site")
    supply: Literal["on", "off", "fault"]
    last_reading: LastReading | None
    flags: list[str] = Field(description="what the installer should look at, open now")


class ReadingPublic(BaseModel):
    at: datetime
    energy_import_wh: int | None
    power_w: int | None
    flags: list[str]


class MeterStatus(MeterPublic):
    """A meter as its site's staff see it: the public state and how its polling goes."""

    profile: str
    supply_changed_at: datetime | None
    last_billable_at: datetime | None
    failures: int = Field(description="failed polls in a row")
    backed_off_until: datetime | None
    last_failure: str | None


class ExchangeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(description="when the meter was exchanged (with its time zone)")
    old_final_wh: int = Field(ge=0, le=MAX_REGISTER_WH, description="the old meter's last register")
    new_initial_wh: int = Field(ge=0, le=MAX_REGISTER_WH,
                                description="the new meter's register when it was fitted")


class ExchangePublic(BaseModel):
    meter_id: str
    at: datetime
    old_final_wh: int
    new_initial_wh: int
    recorded_by: str
    recorded_at: datetime
    offset_wh: int = Field(description="added to the new meter's register for billing")




def _flags(state: MeterState | None) -> list[str]:
    if state is None:
        return []
    return [*state.flags, UNREACHABLE] if state.failures else list(state.flags)


def _last(reading: MeterReading | None) -> LastReading | None:
    if reading is None:
        return None
    return LastReading(at=reading.at, energy_import_wh=reading.energy_import_wh,
                       power_w=reading.power_w)


async def _meter(session: DbSession, principal: Principal, meter_id: str) -> Meter:
    meter = await session.get(Meter, meter_id)
    if meter is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meter {meter_id!r}")
    refs = await refs_of(session, [meter.account_id])
    principal.ensure_account(meter.site_id, meter.account_id, refs.get(meter.account_id))
    return meter


async def _state(session: DbSession, meter_id: str) -> MeterState | None:
    return await session.get(MeterState, meter_id)


@router.get("/meters/{meter_id}", summary="A meter: its household, supply, last reading, flags")
async def meter_route(meter_id: str, session: DbSession, principal: Viewer) -> MeterPublic:
    meter = await _meter(session, principal, meter_id)
    state = await _state(session, meter.id)
    latest = await latest_readings(session, [meter.id])
    refs = await refs_of(session, [meter.account_id])
    return MeterPublic(
        id=meter.id, account=refs[meter.account_id],
        supply=state.supply if state is not None else "on",
        last_reading=_last(latest.get(meter.id)), flags=_flags(state),
    )


@router.get("/meters/{meter_id}/readings", summary="A meter's stored readings, newest first")
async def readings_route(
    meter_id: str,
    session: DbSession,
    principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000, description="how many (100)")] = 100,
    before: Annotated[AwareDatetime | None, Query(
        description="only readings taken before this time: the `at` of the last one of the "
        "previous page")] = None,
) -> list[ReadingPublic]:
    meter = await _meter(session, principal, meter_id)
    rows = await readings(session, meter.id, limit=limit, before=before)
    return [ReadingPublic(at=r.at, energy_import_wh=r.energy_import_wh, power_w=r.power_w,
                          flags=list(r.flags)) for r in rows]


@router.get("/sites/{site_id}/meters", summary="Every meter of a site: state and last reading")
async def site_meters_route(
    site_id: str, session: DbSession, principal: Staff
) -> list[MeterStatus]:
    principal.ensure_site(site_id)
    if await session.get(Site, site_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown site {site_id!r}")
    meters = list((await session.exec(
        select(Meter).where(col(Meter.site_id) == site_id).order_by(col(Meter.id))
    )).all())
    ids = [m.id for m in meters]
    states = {s.meter_id: s for s in (await session.exec(
        select(MeterState).where(col(MeterState.meter_id).in_(ids))
    )).all()} if ids else {}
    latest = await latest_readings(session, ids)
    refs = await refs_of(session, [m.account_id for m in meters])
    answer = []
    for meter in meters:
        state = states.get(meter.id)
        answer.append(MeterStatus(
            id=meter.id, account=refs[meter.account_id],
            supply=state.supply if state is not None else "on",
            last_reading=_last(latest.get(meter.id)), flags=_flags(state),
            profile=meter.profile,
            supply_changed_at=state.supply_changed_at if state else None,
            last_billable_at=state.last_billable_at if state else None,
            failures=state.failures if state else 0,
            backed_off_until=state.backed_off_until if state else None,
            last_failure=state.last_failure if state else None,
        ))
    return answer


@router.post(
    "/meters/{meter_id}/exchanges",
    status_code=status.HTTP_201_CREATED,
    response_model=ExchangePublic,
    summary="Record a meter exchange: billing continues across it",
    responses={422: {"description": "the offending field; nothing was recorded"}},
)
async def exchange_route(
    meter_id: str, body: ExchangeCreate, request: Request, session: DbSession,
    principal: Installer,
) -> Any:
    meter = await _meter(session, principal, meter_id)
    try:
        exchange = await record_exchange(
            session, meter.id, body.at, body.old_final_wh, body.new_initial_wh,
            f"{principal.role}:{principal.token_id}", now=request_now(request),
        )
    except ExchangeError as error:
        await session.rollback()
        return invalid([(f"body.{field}" if field in ExchangeCreate.model_fields else field,
                         message) for field, message in error.problems])
    state = await meter_state(session, meter.id, lock=False)
    public = ExchangePublic(
        meter_id=exchange.meter_id, at=exchange.at, old_final_wh=exchange.old_final_wh,
        new_initial_wh=exchange.new_initial_wh, recorded_by=exchange.recorded_by,
        recorded_at=exchange.recorded_at, offset_wh=state.offset_wh,
    )
    await session.commit()
    return public


class DayPublic(BaseModel):
    day: str = Field(description="the local date (site time zone)")
    energy_wh: int
    cost_gross: str = Field(description="what left the wallet for this meter that day")


class ForecastPublic(BaseModel):
    available: str = Field(description="balance plus the credit the policy allows now")
    cost_per_day: str = Field(description="average of the last 7 full days")
    runs_out_at: datetime | None = Field(description="at this rate; null: nothing is spent")
    days_left: str | None


class SwitchPublic(BaseModel):
    at: datetime
    on: bool
    reason: str
    ok: bool
    detail: str | None


@router.get("/meters/{meter_id}/days", summary="The flat's consumption and cost per local day")
async def days_route(
    meter_id: str,
    request: Request,
    session: DbSession,
    principal: Viewer,
    days: Annotated[int, Query(ge=1, le=366, description="how many days back (30)")] = 30,
) -> list[DayPublic]:
    meter = await _meter(session, principal, meter_id)
    found = await meter_days(session, meter, request_now(request), days)
    return [DayPublic(day=d.day.isoformat(), energy_wh=d.energy_wh, cost_gross=str(d.cost_gross))
            for d in found]


@router.get("/meters/{meter_id}/forecast",
            summary="When the household's credit runs out at the flat's recent daily cost")
async def forecast_route(
    meter_id: str, request: Request, session: DbSession, principal: Viewer
) -> ForecastPublic:
    meter = await _meter(session, principal, meter_id)
    forecast = await supply_forecast(session, meter, request_now(request))
    return ForecastPublic(
        available=str(forecast.available), cost_per_day=str(forecast.cost_per_day),
        runs_out_at=forecast.runs_out_at,
        days_left=str(forecast.days_left) if forecast.days_left is not None else None,
    )


@router.get("/meters/{meter_id}/switches",
            summary="Every switch of the flat's supply relay, newest first")
async def switches_route(
    meter_id: str,
    session: DbSession,
    principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000, description="how many (100)")] = 100,
) -> list[SwitchPublic]:
    meter = await _meter(session, principal, meter_id)
    rows = (await session.exec(
        select(SupplySwitch).where(col(SupplySwitch.meter_id) == meter.id)
        .order_by(col(SupplySwitch.id).desc()).limit(limit))).all()
    return [SwitchPublic(at=r.at, on=r.on, reason=r.reason, ok=r.ok, detail=r.detail)
            for r in rows]
