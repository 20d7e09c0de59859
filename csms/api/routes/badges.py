"""Badges over HTTP: list, register, block, unblock.

Owners (and admins) manage every badge of their site and register new ones, foreign MIFARE
Classic cards included. Residents see their own badges and can block one (for example when it
is lost) and unblock a badge they had reported lost; a badge the owner blocked stays blocked
until the owner lifts it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from csms.api.deps import DbSession, Principal, problems_detail, require_roles
from rfid.models import Badge
from rfid.registry import (
    BadgeNotFound,
    RegistryError,
    account_site,
    block_badge,
    get_badge,
    list_badges,
    register_badge,
    unblock_badge,
)

router = APIRouter(tags=["badges"])

Manager = Annotated[Principal, Depends(require_roles("admin", "owner"))]
Holder = Annotated[Principal, Depends(require_roles("admin", "owner", "resident"))]


class BadgePublic(BaseModel):
    uid: str
    account_id: str
    label: str | None
    status: str
    valid_from: date | None
    valid_until: date | None
    origin: str
    card_type: str | None
    max_sessions: int

    @classmethod
    def of(cls, badge: Badge) -> BadgePublic:
        return cls.model_validate(badge, from_attributes=True)


class BadgeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: str = Field(description="the UID, in `format` (default hex, any case and separators)")
    format: str = "hex"
    account_id: str
    label: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    foreign: bool = Field(False, description="an existing card (e.g. for the building's doors)")
    max_sessions: int = 1


class BlockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lost: bool = False


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def _invalid(error: RegistryError) -> JSONResponse:
    return JSONResponse(
        problems_detail([f"{error.field}: {error.message}"]),
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _site_badge(session: DbSession, site_id: str, uid: str, principal: Principal) -> Badge:
    """The badge `uid` of `site_id` as `principal` may touch it: 404 when it is not on the site
    (no hint that it exists elsewhere), 403 when a resident reaches for another account's."""
    principal.ensure_site(site_id)
    try:
        badge = await get_badge(session, uid)
    except BadgeNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no badge {uid} on site {site_id}") \
            from None
    except RegistryError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, problems_detail([str(error)])["problems"]
        ) from None
    if await account_site(session, badge.account_id) != site_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no badge {badge.uid} on site {site_id}")
    principal.ensure_account(site_id, badge.account_id)
    return badge


@router.get("/sites/{site_id}/badges", summary="Badges of a site (a resident: their own)")
async def list_badges_route(
    site_id: str, session: DbSession, principal: Holder, account: str | None = None
) -> list[BadgePublic]:
    if principal.role == "resident":
        account = account or principal.account_id
        principal.ensure_account(site_id, account or "")
    else:
        principal.ensure_site(site_id)
    badges = await list_badges(session, site_id=site_id, account_id=account)
    return [BadgePublic.of(b) for b in badges]


@router.post(
    "/sites/{site_id}/badges",
    status_code=status.HTTP_201_CREATED,
    summary="Register a MIFARE Classic badge for an account of the site",
    responses={422: {"description": "the offending field; nothing was stored"}},
)
async def register_badge_route(
    site_id: str, body: BadgeCreate, request: Request, session: DbSession, principal: Manager
) -> Any:
    principal.ensure_site(site_id)
    try:
        if await account_site(session, body.account_id) != site_id:
            raise RegistryError("account_id", f"account {body.account_id!r} is not on {site_id}")
        badge = await register_badge(
            session, uid=body.uid, fmt=body.format, account_id=body.account_id,
            now=_now(request), label=body.label, valid_from=body.valid_from,
            valid_until=body.valid_until, origin="foreign" if body.foreign else "issued",
            max_sessions=body.max_sessions,
        )
    except RegistryError as error:
        await session.rollback()
        return _invalid(error)
    await session.commit()
    return BadgePublic.of(badge)


@router.post("/sites/{site_id}/badges/{uid}/block", summary="Block a badge, or report it lost")
async def block_badge_route(
    site_id: str,
    uid: str,
    request: Request,
    session: DbSession,
    principal: Holder,
    body: BlockRequest | None = None,
) -> BadgePublic:
    badge = await _site_badge(session, site_id, uid, principal)
    badge = await block_badge(session, badge.uid, now=_now(request),
                              lost=body is not None and body.lost)
    await session.commit()
    return BadgePublic.of(badge)


@router.post("/sites/{site_id}/badges/{uid}/unblock", summary="Let a blocked badge work again")
async def unblock_badge_route(
    site_id: str, uid: str, request: Request, session: DbSession, principal: Holder
) -> Any:
    badge = await _site_badge(session, site_id, uid, principal)
    if principal.role == "resident" and badge.status != "lost":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"badge {badge.uid} is {badge.status}; only the site's owner can unblock it",
        )
    try:
        badge = await unblock_badge(session, badge.uid, now=_now(request))
    except RegistryError as error:
        await session.rollback()
        return _invalid(error)
    await session.commit()
    return BadgePublic.of(badge)
