"""Load management over the API: a site's load now (limit, building, every session's limit),
and the grid operator's temporary limits (set, list, lift)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.api.deps import DbSession, Principal, request_now, require_roles, scoped_site
from csms.api.problems import invalid
from csms.load.grid_limits import (
    GridLimitProblem,
    LimitRequest,
    lift_grid_limit,
    set_grid_limit,
    site_limits,
)
from csms.load.models import GridLimit, LoadState, SiteLoad

router = APIRouter(tags=["load"])
Staff = Annotated[Principal, Depends(require_roles("admin", "owner", "installer"))]


class SiteLoadView(BaseModel):
    site_id: str
    settings: dict[str, Any] | None = Field(description="the site file's load section")
    computed_at: datetime | None = None
    state: dict[str, Any] | None = Field(
        default=None, description="limit_a, reserve_a, building_a and base_load_a per phase, "
        "sessions (station, connector, drawn_a, limit_a, paused, controllable), grid_limits")


class GridLimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station_id: str | None = Field(default=None, max_length=64,
                                   description="one station; absent: the site's connection")
    kw: Decimal | None = Field(default=None, description="the limit in kW (e.g. 4.2)")
    amps: Decimal | None = Field(default=None, description="or in A per phase")
    until: AwareDatetime = Field(description="when it ends (lifted on time)")
    reason: str | None = Field(default=None, max_length=200)


class GridLimitOut(BaseModel):
    id: int
    site_id: str
    station_id: str | None
    limit_a: Decimal
    limit_w: int | None
    starts_at: datetime
    ends_at: datetime
    lifted_at: datetime | None
    reason: str | None
    created_by: str

    @classmethod
    def of(cls, row: GridLimit) -> GridLimitOut:
        assert row.id is not None
        return cls(id=row.id, site_id=row.site_id, station_id=row.station_id,
                   limit_a=row.limit_a, limit_w=row.limit_w, starts_at=row.starts_at,
                   ends_at=row.ends_at, lifted_at=row.lifted_at, reason=row.reason,
                   created_by=row.created_by)






@router.get("/sites/{site_id}/load", summary="The site's load: limit, building, allocations")
async def site_load_route(site_id: str, session: DbSession, principal: Staff) -> SiteLoadView:
    await scoped_site(session, principal, site_id)
    section = await session.get(SiteLoad, site_id)
    state = await session.get(LoadState, site_id)
    return SiteLoadView(site_id=site_id, settings=section.section if section else None,
                        computed_at=state.computed_at if state else None,
                        state=state.state if state else None)


@router.get("/sites/{site_id}/grid-limits", summary="The grid operator's limits, newest first")
async def grid_limits_route(
    site_id: str, session: DbSession, principal: Staff
) -> list[GridLimitOut]:
    await scoped_site(session, principal, site_id)
    return [GridLimitOut.of(row) for row in await site_limits(session, site_id)]


@router.post(
    "/sites/{site_id}/grid-limits", status_code=201,
    summary="Set a temporary limit (§14a EnWG) for the site or one station",
    responses={422: {"description": "the offending field; nothing was recorded"}},
)
async def set_grid_limit_route(
    site_id: str, body: GridLimitIn, request: Request, session: DbSession, principal: Staff,
) -> Any:
    await scoped_site(session, principal, site_id)
    try:
        row = await set_grid_limit(session, LimitRequest(
            site_id=site_id, station_id=body.station_id, ends_at=body.until,
            limit_a=body.amps, reason=body.reason,
            limit_w=int(body.kw * 1000) if body.kw is not None else None,
        ), now=request_now(request), actor=f"{principal.role}:{principal.token_id}")
    except GridLimitProblem as problem:
        return invalid([(problem.field, problem.message)])
    await session.commit()
    _wake_load(request)
    return JSONResponse(GridLimitOut.of(row).model_dump(mode="json"), status_code=201)


@router.delete("/sites/{site_id}/grid-limits/{limit_id}", summary="Lift a limit now")
async def lift_grid_limit_route(
    site_id: str, limit_id: int, request: Request, session: DbSession, principal: Staff,
) -> GridLimitOut:
    await scoped_site(session, principal, site_id)
    try:
        row = await lift_grid_limit(session, limit_id, site_id, request_now(request))
    except GridLimitProblem as problem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(problem)) from None
    await session.commit()
    _wake_load(request)
    return GridLimitOut.of(row)


def _wake_load(request: Request) -> None:
    """Applied at once on this node; the node running load management (if another) applies it
    at its next reading, within the site's reading period."""
    controller = getattr(request.app.state, "load", None)
    if controller is not None:
        controller.wake()
