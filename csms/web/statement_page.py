"""The statement PDF as a response, for the owner's and the resident's pages alike."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.responses import Response
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Site
from csms.web.guard import now_of
from csms.web.i18n import translator
from csms.web.statement import gather_statement, month_bounds, statement_pdf
from wallet.models import Account


async def statement_response(request: Request, db: AsyncSession, site: Site,
                             account: Account) -> Response:
    """`?month=YYYY-MM` (default: this month, site time)."""
    from zoneinfo import ZoneInfo

    month = request.query_params.get("month") or now_of(request).astimezone(
        ZoneInfo(site.timezone)).strftime("%Y-%m")
    try:
        month_bounds(month, site.timezone)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"not a month: {month!r}") from None
    data = await gather_statement(db, site, account, month)
    body = statement_pdf(data, translator(request.state.lang), request.state.lang)
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="statement-{account.ref}-{month}.pdf"'})
