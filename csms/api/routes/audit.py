"""`GET /api/v1/audit`: what staff did and every money movement, for an admin or a site's
owner."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from csms.api.deps import DbSession, Principal, require_roles
from csms.audit.trail import trail

router = APIRouter(tags=["audit"])

Auditor = Annotated[Principal, Depends(require_roles("admin", "owner"))]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("/audit", summary="Staff actions and money movements, oldest first, in pages")
async def audit_route(
    session: DbSession,
    principal: Auditor,
    site: Annotated[str | None, Query(description="the site (an owner: their own)")] = None,
    since: Annotated[datetime | None, Query(description="from this time on (UTC if naive)")]
    = None,
    until: Annotated[datetime | None, Query(description="before this time")] = None,
    kind: Annotated[Literal["staff", "money"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    site_id = site if site is not None else principal.site_id
    if site_id is not None:
        principal.ensure_site(site_id)
    page = await trail(
        session, site_id=site_id, since=_utc(since), until=_utc(until), kind=kind,
        limit=limit, offset=offset,
    )
    return {"items": page.items, "next_offset": page.next_offset}
