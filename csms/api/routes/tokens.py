"""API tokens over HTTP: list and revoke (admin: every token; owner: their site's tokens).

Secrets are never shown: a token's plain text is printed once when it is minted. Revocation is
effective at once on every node, as every request checks its token against the database.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from csms.api.deps import DbSession, Principal, request_now, require_roles
from csms.auth.tokens import TokenNotFound, list_tokens, revoke_token

router = APIRouter(tags=["tokens"])

TokenKeeper = Annotated[Principal, Depends(require_roles("admin", "owner"))]




@router.get(
    "/tokens",
    summary="API tokens (never their secrets); an owner sees their site's tokens",
    responses={403: {"description": "a site other than the owner's"}},
)
async def list_tokens_route(
    session: DbSession,
    principal: TokenKeeper,
    site: str | None = None,
    include_revoked: bool = False,
) -> Any:
    if principal.role != "admin":
        if site is not None:
            principal.ensure_site(site)
        site = principal.site_id
    return await list_tokens(session, site_id=site, include_revoked=include_revoked)


@router.post(
    "/tokens/{token_id}/revoke",
    summary="Revoke a token at once, on every node",
    responses={404: {"description": "no such token (for an owner: on their site)"}},
)
async def revoke_token_route(
    token_id: str, request: Request, session: DbSession, principal: TokenKeeper
) -> Any:
    reach = None if principal.role == "admin" else principal.site_id
    try:
        view, was_active = await revoke_token(
            session, token_id, now=request_now(request), site_id=reach
        )
    except TokenNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    await session.commit()
    return view | {"was_active": was_active}
