"""The owner's pages: tariffs (edit, preview, publish as a new version), accounts with desk
top-ups and receipts, voucher sheets, revenue per service and month (CSV)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from billing.history import site_revenue
from csms.api.deps import DbSession
from csms.inventory.tariffs import (
    TariffProblems,
    checked_tariff,
    latest_version,
    publish_tariff,
    site_tariffs,
    tariff_document,
    tariff_versions,
)
from csms.web.charts import Series, line_chart
from csms.web.guard import CheckedForm, form_text, now_of, page_principal, page_site, signed_in
from csms.web.i18n import translator
from csms.web.models import WebUser
from csms.web.render import render
from csms.web.statement_page import statement_response
from csms.web.tariff_form import FormProblem, document_from_form, document_text, field_name
from csms.web.users import UserProblem, create_user, set_password_url
from pricing.preview import preview
from wallet.credit import whole_policy
from wallet.errors import WalletError
from wallet.models import Account
from wallet.service import get_policy, set_policy, top_up_cash, wallet_view
from wallet.vouchers import create_batch

router = APIRouter()
Owner = Annotated[WebUser, Depends(signed_in("owner"))]

NAV = [
    (("owner", "admin"), "/owner", "owner.nav.home"),
    (("owner", "admin"), "/owner/tariffs", "owner.nav.tariffs"),
    (("owner", "admin"), "/owner/accounts", "owner.nav.accounts"),
    (("owner", "admin"), "/owner/vouchers", "owner.nav.vouchers"),
    (("owner",), "/installer/load", "installer.nav.load"),
]
PAGES = [("owner", path) for _, path, _ in NAV]


@router.get("/owner")
async def overview(request: Request, db: DbSession, user: Owner) -> Response:
    site = page_site(request)
    since = now_of(request) - timedelta(days=366)
    revenue = await site_revenue(db, site.id, site.timezone, since)
    return render(request, "owner/overview.html", {"revenue": revenue})


@router.get("/owner/revenue.csv")
async def revenue_csv(request: Request, db: DbSession, user: Owner) -> Response:
    site = page_site(request)
    rows = await site_revenue(db, site.id, site.timezone, now_of(request) - timedelta(days=366))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["month", "service", "uses", "net", "gross", "currency"])
    for row in rows:
        writer.writerow([row.month, row.kind, row.uses, row.net, row.gross, site.currency])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="revenue-{site.id}.csv"'})


@router.get("/owner/tariffs")
async def tariffs(request: Request, db: DbSession, user: Owner) -> Response:
    site = page_site(request)
    rows = await site_tariffs(db, site.id)
    versions = {row.id: await latest_version(db, site.id, row.id) for row in rows}
    return render(request, "owner/tariffs.html", {"tariffs": rows, "versions": versions})


def _preview_context(request: Request, document: dict[str, Any], power_w: int) -> dict[str, Any]:
    site = page_site(request)
    rated = checked_tariff(document, site)
    t = translator(request.state.lang)
    # A weekday evening start in the site's zone: time-of-use windows show as they would.
    from zoneinfo import ZoneInfo

    local = now_of(request).astimezone(ZoneInfo(site.timezone))
    start = local.replace(hour=18, minute=0, second=0, microsecond=0)
    shown = preview(rated, document, start, power_w=power_w)
    return {
        "preview": shown,
        "chart_minutes": line_chart([Series(t("owner.preview.gross"), shown.by_minutes)],
                                    title=t("owner.preview.by_minutes", kw=power_w / 1000),
                                    x_label="min", y_label=site.currency),
        "chart_kwh": line_chart([Series(t("owner.preview.gross"), shown.by_kwh)],
                                title=t("owner.preview.by_kwh"), x_label="kWh",
                                y_label=site.currency),
    }


async def _editor(request: Request, db: DbSession, tariff_id: str, document: dict[str, Any],
                  **extra: Any) -> Response:
    site = page_site(request)
    versions = await tariff_versions(db, site.id, tariff_id)
    context: dict[str, Any] = {"tariff_id": tariff_id, "doc": document,
                               "text": document_text(document), "versions": versions,
                               "errors": {}, **extra}
    return render(request, "owner/tariff.html", context,
                  status=422 if context["errors"] else 200)


@router.get("/owner/tariffs/{tariff_id}")
async def tariff_page(request: Request, tariff_id: str, db: DbSession, user: Owner) -> Response:
    site = page_site(request)
    document = await tariff_document(db, site.id, tariff_id)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tariff {tariff_id!r}")
    return await _editor(request, db, tariff_id, document,
                         **_preview_context(request, document, 11_000))


@router.post("/owner/tariffs/{tariff_id}")
async def tariff_submit(request: Request, tariff_id: str, db: DbSession, user: Owner,
                        form: CheckedForm) -> Response:
    site = page_site(request)
    stored = await tariff_document(db, site.id, tariff_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tariff {tariff_id!r}")
    power = form_text(form, "power_kw") or "11"
    try:
        power_w = int(Decimal(power) * 1000)
        if not 1_000 <= power_w <= 350_000:
            raise ValueError
    except (ArithmeticError, ValueError):
        power_w = 11_000
    try:
        document = document_from_form(dict(form), stored)
        document["id"] = tariff_id  # the id is the tariff's name in stations and the site file
        checked_tariff(document, site)
    except FormProblem as problem:
        return await _editor(request, db, tariff_id, stored,
                             errors={problem.field: problem.message})
    except TariffProblems as problems:
        errors: dict[str, str] = {}
        for text in problems.problems:
            path, _, message = text.partition(": ")
            errors.setdefault(field_name(path), f"{path}: {message}")
        return await _editor(request, db, tariff_id, document if isinstance(document, dict)
                             else stored, errors=errors)
    if form_text(form, "action") == "publish":
        principal = page_principal(request)
        version = await publish_tariff(db, site, document, now=now_of(request),
                                       actor=f"{principal.role}:{principal.token_id}")
        await db.commit()
        return RedirectResponse(f"/owner/tariffs/{tariff_id}?published={version}",
                                status_code=303)
    return await _editor(request, db, tariff_id, document, previewing=True,
                         **_preview_context(request, document, power_w))


@router.get("/owner/accounts")
async def accounts(request: Request, db: DbSession, user: Owner) -> Response:
    site = page_site(request)
    rows = (await db.exec(select(Account).where(col(Account.site_id) == site.id)
                          .order_by(col(Account.ref)))).all()
    now = now_of(request)
    wallets = {a.id: await wallet_view(db, a.id, now) for a in rows}
    return render(request, "owner/accounts.html", {
        "accounts": rows, "wallets": wallets, "invited": request.query_params.get("invited")})


@router.post("/owner/accounts/{ref}/topup")
async def desk_topup(request: Request, ref: str, db: DbSession, user: Owner,
                     form: CheckedForm) -> Response:
    site = page_site(request)
    account = (await db.exec(select(Account).where(col(Account.site_id) == site.id,
                                                   col(Account.ref) == ref))).first()
    if account is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {ref!r}")
    principal = page_principal(request)
    receipt = form_text(form, "receipt") or f"web-{uuid.uuid4().hex[:10]}"
    shown = {"ref": account.ref, "name": account.name}  # a rollback expires the row
    try:
        result = await top_up_cash(db, account_id=account.id, amount=form_text(form, "amount"),
                                   receipt=receipt, staff=principal.token_id,
                                   at=now_of(request))
    except WalletError as error:
        await db.rollback()
        return render(request, "owner/receipt.html", {"error": str(error), "account": shown},
                      status=422)
    await db.commit()
    return render(request, "owner/receipt.html", {
        "account": shown, "result": result, "receipt": receipt, "at": now_of(request)})


@router.post("/owner/accounts/{ref}/invite")
async def invite(request: Request, ref: str, db: DbSession, user: Owner,
                 form: CheckedForm) -> Response:
    site = page_site(request)
    try:
        _, token = await create_user(db, email=form_text(form, "email"), role="resident",
                                     site_id=site.id, account_ref=ref,
                                     language=form_text(form, "language") or "de",
                                     now=now_of(request))
    except UserProblem as problem:
        await db.rollback()
        return render(request, "owner/invited.html", {"error": problem.message}, status=422)
    await db.commit()
    settings = request.app.state.settings
    return render(request, "owner/invited.html", {
        "link": set_password_url(settings.pages_url(), token), "email": form_text(form, "email")})


@router.get("/owner/vouchers")
async def vouchers_page(request: Request, user: Owner) -> Response:
    return render(request, "owner/vouchers.html", {})


@router.post("/owner/vouchers")
async def vouchers(request: Request, db: DbSession, user: Owner, form: CheckedForm) -> Response:
    site = page_site(request)
    principal = page_principal(request)
    try:
        count = int(form_text(form, "count") or "0")
        days = int(form_text(form, "days") or "365")
        batch = await create_batch(
            db, site_id=site.id, value=form_text(form, "value"), count=count,
            expires_at=now_of(request) + timedelta(days=days),
            key=f"batch:{site.id}:{uuid.uuid4()}", staff=principal.token_id, at=now_of(request))
    except (WalletError, ValueError) as error:
        await db.rollback()
        return render(request, "owner/vouchers.html", {"error": str(error)}, status=422)
    await db.commit()
    return render(request, "owner/voucher_sheet.html", {"batch": batch})



@router.get("/owner/accounts/{ref}/statement.pdf")
async def statement(request: Request, ref: str, db: DbSession, user: Owner) -> Response:
    site = page_site(request)
    account = (await db.exec(select(Account).where(col(Account.site_id) == site.id,
                                                   col(Account.ref) == ref))).first()
    if account is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {ref!r}")
    return await statement_response(request, db, site, account)


async def _account_of(db: DbSession, site_id: str, ref: str) -> Account:
    account = (await db.exec(select(Account).where(col(Account.site_id) == site_id,
                                                   col(Account.ref) == ref))).first()
    if account is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {ref!r}")
    return account


@router.get("/owner/accounts/{ref}/policy")
async def policy_page(request: Request, ref: str, db: DbSession, user: Owner) -> Response:
    account = await _account_of(db, page_site(request).id, ref)
    policy = await get_policy(db, account.id)
    return render(request, "owner/policy.html", {
        "account": account, "text": document_text(policy.to_document()),
        "saved": request.query_params.get("saved")})


@router.post("/owner/accounts/{ref}/policy")
async def policy_submit(request: Request, ref: str, db: DbSession, user: Owner,
                        form: CheckedForm) -> Response:
    account = await _account_of(db, page_site(request).id, ref)
    shown = {"ref": account.ref, "name": account.name}
    text = str(form.get("policy") or "")
    principal = page_principal(request)
    try:
        document = yaml.safe_load(text)
        # The same rules as PUT /api/v1/accounts/{id}/credit-policy: the whole document.
        await set_policy(db, account.id, whole_policy(document), staff=principal.token_id,
                         at=now_of(request))
    except (yaml.YAMLError, WalletError) as error:
        await db.rollback()
        return render(request, "owner/policy.html", {
            "account": shown, "text": text, "error": str(error)}, status=422)
    await db.commit()
    return RedirectResponse(f"/owner/accounts/{ref}/policy?saved=1", status_code=303)
