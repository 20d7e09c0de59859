"""Site files over HTTP: import (admin, installer) and export (admin, owner, installer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from csms.api.deps import DbSession, Principal, require_roles
from csms.api.problems import invalid
from csms.db.engine import refresh_statistics
from csms.documents import DocumentError, parse_document
from csms.inventory.sitefile import (
    SiteFileError,
    apply_site_document,
    export_site,
    site_file_schema,
    validate_site_document,
)

router = APIRouter(tags=["sites"])


@router.post(
    "/sites/import",
    summary="Validate a whole site file (YAML or JSON body), then upsert it in one transaction",
    responses={422: {"description": "every problem with its path; nothing was changed"}},
)
async def import_site_route(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(require_roles("admin", "installer"))],
) -> Any:
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        document = validate_site_document(parse_document(body, name="body"))
        principal.ensure_site(document.site.id)
        # The node's login key, when an OCPP server runs here: plain station passwords become
        # verified-login records (fast for thousands of stations; scrypt after first login).
        ocpp = getattr(request.app.state, "ocpp", None)
        login_key = ocpp.options.login_key if ocpp is not None else None
        await apply_site_document(session, document, login_key=login_key)
    except DocumentError as error:
        return invalid([str(error)])
    except SiteFileError as error:
        await session.rollback()
        return invalid(error.problems)
    await session.commit()
    await refresh_statistics(request.app.state.engine)
    return {"site": document.site.id, "status": "imported"}


@router.get("/sites/schema", summary="The site file's JSON Schema")
async def site_schema_route(
    _: Annotated[Principal, Depends(require_roles("admin", "owner", "installer"))],
) -> dict[str, Any]:
    return site_file_schema()


@router.get("/sites/{site_id}/export", summary="The site as a site file (JSON)")
async def export_site_route(
    site_id: str,
    session: DbSession,
    principal: Annotated[Principal, Depends(require_roles("admin", "owner", "installer"))],
) -> dict[str, Any]:
    principal.ensure_site(site_id)
    try:
        return await export_site(session, site_id)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown site {site_id!r}") from None
