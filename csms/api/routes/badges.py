"""Badges over HTTP: list, register, block, unblock.

Owners (and admins) manage every badge of their site and register new ones, foreign MIFARE
Classic cards included. Residents see their own badges and can block one (for example when it
is lost) and unblock a badge they had reported lost; a badge the owner blocked stays blocked
until the owner lifts it.

Badges belong to a site: `{uid}` is looked up among the path's site's badges only (another
site may have a badge with the same UID), and `account_id` is the account's id on the site.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from csms.api.deps import (
    DbSession,
    Principal,
    request_now,
    require_roles,
    site_account,
)
from csms.api.problems import SITE_AMBIGUOUS, ApiProblem, invalid, problem_responses
from rfid.models import Badge
from rfid.registry import (
    BadgeNotFound,
    RegistryError,
    block_badge,
    get_badge,
    list_badges,
    register_badge,
    unblock_badge,
)
from wallet.accounts import account_by_ref, refs_of

router = APIRouter(tags=["badges"])

Manager = Annotated[Principal, Depends(require_roles("admin", "owner"))]
Holder = Annotated[Principal, Depends(require_roles("admin", "owner", "resident"))]


class BadgePublic(BaseModel):
    site_id: str
    uid: str
    account_id: str = Field(description="the account's id on the site")
    label: str | None
    status: str
    valid_from: date | None
    valid_until: date | None
    origin: str
    card_type: str | None
    max_sessions: int

    @classmethod
    def of(cls, badge: Badge, refs: dict[str, str]) -> BadgePublic:
        """`refs` maps internal account keys to the site's ids (`wallet.accounts.refs_of`)."""
        public = cls.model_validate(badge, from_attributes=True)
        public.account_id = refs[badge.account_id]
        return public


async def _public(session: DbSession, badges: list[Badge]) -> list[BadgePublic]:
    refs = await refs_of(session, [b.account_id for b in badges])
    return [BadgePublic.of(b, refs) for b in badges]


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




def _invalid(error: RegistryError) -> JSONResponse:
    return invalid([(error.field, error.message)])


async def _site_badge(session: DbSession, site_id: str, uid: str, principal: Principal) -> Badge:
    """The badge `uid` of `site_id` as `principal` may touch it: 404 when it is not on the site
    (no hint whether it exists elsewhere), 403 when a resident reaches for another account's."""
    principal.ensure_site(site_id)
    try:
        badge = await get_badge(session, site_id, uid)
    except BadgeNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no badge {uid} on site {site_id}") \
            from None
    except RegistryError as error:
        raise ApiProblem(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid input",
                         [(error.field, error.message)]) from None
    refs = await refs_of(session, [badge.account_id])
    principal.ensure_account(site_id, badge.account_id, refs[badge.account_id])
    return badge


@router.get("/sites/{site_id}/badges", summary="Badges of a site (a resident: their own)",
            responses=problem_responses(409, why_409=SITE_AMBIGUOUS))
async def list_badges_route(
    site_id: str, session: DbSession, principal: Holder, account: str | None = None
) -> list[BadgePublic]:
    principal.ensure_site(site_id)
    account_id: str | None = None
    if principal.role == "resident":
        account = account or principal.account_ref
    if account is not None:
        account_id = (await site_account(session, principal, account, site_id)).id
    badges = await list_badges(session, site_id=site_id, account_id=account_id)
    return await _public(session, list(badges))


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
        account = await account_by_ref(session, site_id, body.account_id)
        if account is None:
            # The same answer whether or not another site has such an account.
            raise RegistryError("account_id", f"unknown account {body.account_id!r}")
        badge = await register_badge(
            session, uid=body.uid, fmt=body.format, account_id=account.id,
            now=request_now(request), label=body.label, valid_from=body.valid_from,
            valid_until=body.valid_until, origin="foreign" if body.foreign else "issued",
            max_sessions=body.max_sessions,
        )
    except RegistryError as error:
        await session.rollback()
        return _invalid(error)
    await session.commit()
    return (await _public(session, [badge]))[0]


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
    badge = await block_badge(session, site_id, badge.uid, now=request_now(request),
                              lost=body is not None and body.lost)
    await session.commit()
    return (await _public(session, [badge]))[0]


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
        badge = await unblock_badge(session, site_id, badge.uid, now=request_now(request))
    except RegistryError as error:
        await session.rollback()
        return _invalid(error)
    await session.commit()
    return (await _public(session, [badge]))[0]
