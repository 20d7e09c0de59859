"""The resident's pages: their wallet, what runs now and what it costs, history with bills that
explain every line, charts, badges (report one lost), voucher top-up, alerts, the laundry room.
Every page reads through the same services as the API, scoped to the resident's own account."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import col, select

from amenities.machines import machine_views
from billing.history import account_uses, cost_of, running_uses, totals_by_day, totals_by_month
from billing.models import PaidUse
from csms.api.deps import DbSession
from csms.web.bill_lines import explain_lines, vat_percent
from csms.web.charts import bar_chart
from csms.web.guard import CheckedForm, form_text, now_of, page_site, signed_in
from csms.web.i18n import format_money, translator
from csms.web.models import WebUser
from csms.web.render import render
from csms.web.statement_page import statement_response
from rfid.models import Badge
from rfid.registry import block_badge
from wallet.credit import SiteCalendar, friendly_window
from wallet.models import Account
from wallet.notify import household_webhook_problem
from wallet.service import activate_emergency_credit, get_policy, wallet_view
from wallet.vouchers import redeem_voucher

router = APIRouter()
Resident = Annotated[WebUser, Depends(signed_in("resident"))]

NAV = [
    (("resident",), "/resident", "resident.nav.home"),
    (("resident",), "/resident/history", "resident.nav.history"),
    (("resident",), "/resident/badges", "resident.nav.badges"),
    (("resident",), "/resident/topup", "resident.nav.topup"),
    (("resident",), "/resident/laundry", "resident.nav.laundry"),
    (("resident",), "/resident/alerts", "resident.nav.alerts"),
]
PAGES = [("resident", path) for _, path, _ in NAV]


def _account_id(user: WebUser) -> str:
    assert user.account_id is not None  # residents always have one (users.create_user)
    return user.account_id


async def _wallet(db: DbSession, request: Request, user: WebUser) -> Any:
    return await wallet_view(db, _account_id(user), now_of(request))


@router.get("/resident")
async def overview(request: Request, db: DbSession, user: Resident) -> Response:
    wallet = await _wallet(db, request, user)
    running = await running_uses(db, _account_id(user))
    site = page_site(request)
    policy = await get_policy(db, _account_id(user))
    # The same rule the wallet applies when credit runs out: is a friendly window open now?
    friendly = friendly_window(policy.friendly, SiteCalendar(site.timezone, site.country,
                                                             site.region), now_of(request))
    return render(request, "resident/overview.html", {
        "wallet": wallet, "running": running, "cost_of": cost_of, "policy": policy,
        "friendly_now": friendly[0].value if friendly else None,
        "notice": request.query_params.get("notice")})


@router.get("/resident/live.json")
async def live(request: Request, db: DbSession, user: Resident) -> JSONResponse:
    """What the overview refreshes every 2 s: balance and each running use's cost so far."""
    wallet = await _wallet(db, request, user)
    lang = request.state.lang
    running = await running_uses(db, _account_id(user))
    return JSONResponse({
        "balance": format_money(wallet.balance, wallet.currency, lang),
        "available": format_money(wallet.available, wallet.currency, lang),
        "uses": {str(u.id): {"cost": format_money(cost_of(u), u.currency, lang),
                             "energy": f"{Decimal(u.energy_wh) / 1000:.3f} kWh"}
                 for u in running},
        "running": len(running),
    }, headers={"Cache-Control": "no-store"})


@router.post("/resident/emergency-credit")
async def emergency(request: Request, db: DbSession, user: Resident,
                    form: CheckedForm) -> Response:
    from wallet.errors import WalletError

    try:
        await activate_emergency_credit(db, _account_id(user), at=now_of(request))
        await db.commit()
        notice = "resident.emergency.done"
    except WalletError:
        await db.rollback()
        notice = "resident.emergency.refused"
    return RedirectResponse(f"/resident?notice={notice}", status_code=303)


@router.get("/resident/history")
async def history(request: Request, db: DbSession, user: Resident) -> Response:
    site = page_site(request)
    now = now_of(request)
    uses = await account_uses(db, _account_id(user), since=now - timedelta(days=400), limit=2000)
    t = translator(request.state.lang)
    today = now.astimezone().date()
    days = totals_by_day(uses, site.timezone, today)
    months = totals_by_month(uses, site.timezone, today)
    charts = {
        "cost_days": bar_chart([(d.label, d.cost) for d in days],
                               title=t("resident.chart.cost_days"), unit=site.currency),
        "energy_days": bar_chart([(d.label, d.energy_kwh) for d in days],
                                 title=t("resident.chart.energy_days"), unit="kWh"),
        "cost_months": bar_chart([(m.label, m.cost) for m in months],
                                 title=t("resident.chart.cost_months"), unit=site.currency),
        "energy_months": bar_chart([(m.label, m.energy_kwh) for m in months],
                                   title=t("resident.chart.energy_months"), unit="kWh"),
    }
    return render(request, "resident/history.html", {
        "uses": uses[:100], "charts": charts, "cost_of": cost_of})


async def _own_use(db: DbSession, user: WebUser, use_id: int) -> PaidUse:
    use = await db.get(PaidUse, use_id)
    if use is None or use.account_id != user.account_id:
        # The same answer whether it is another household's or does not exist.
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no use {use_id}")
    return use


@router.get("/resident/bills/{use_id}")
async def bill(request: Request, use_id: int, db: DbSession, user: Resident) -> Response:
    use = await _own_use(db, user, use_id)
    t = translator(request.state.lang)
    lines = explain_lines(use.lines or [], use.tariff, use.currency, request.state.lang, t)
    return render(request, "resident/bill.html", {
        "use": use, "lines": lines, "vat_percent": vat_percent(use.tariff),
        "cost": cost_of(use), "tariff_name": use.tariff.get("name") or use.tariff_id})


async def _own_badges(db: DbSession, user: WebUser) -> list[Badge]:
    query = select(Badge).where(col(Badge.account_id) == user.account_id).order_by(
        col(Badge.uid))
    return list((await db.exec(query)).all())


@router.get("/resident/badges")
async def badges(request: Request, db: DbSession, user: Resident) -> Response:
    return render(request, "resident/badges.html", {"badges": await _own_badges(db, user)})


@router.post("/resident/badges/{uid}/lost")
async def report_lost(request: Request, uid: str, db: DbSession, user: Resident,
                      form: CheckedForm) -> Response:
    own = {b.uid: b for b in await _own_badges(db, user)}
    if uid not in own:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no badge {uid}")
    # The same service as the API: blocked on every station's local list at once.
    await block_badge(db, own[uid].site_id, uid, now=now_of(request), lost=True)
    await db.commit()
    return RedirectResponse("/resident/badges?notice=resident.badges.reported", status_code=303)


@router.get("/resident/topup")
async def topup_page(request: Request, user: Resident) -> Response:
    return render(request, "resident/topup.html", {})


@router.post("/resident/topup")
async def topup(request: Request, db: DbSession, user: Resident, form: CheckedForm) -> Response:
    code = form_text(form, "code")
    result = await redeem_voucher(db, account_id=_account_id(user), code=code,
                                  at=now_of(request))
    await db.commit()  # a failed attempt counts towards the lock as well
    if result.ok:
        wallet = await _wallet(db, request, user)
        return render(request, "resident/topup.html", {
            "done": result.amount, "wallet": wallet})
    return render(request, "resident/topup.html", {"refused": result.reason, "code": code},
                  status=422)


@router.get("/resident/laundry")
async def laundry(request: Request, db: DbSession, user: Resident) -> Response:
    site = page_site(request)
    machines = await machine_views(db, site.id, now_of(request))
    return render(request, "resident/laundry.html", {"machines": machines})


@router.get("/resident/alerts")
async def alerts_page(request: Request, db: DbSession, user: Resident) -> Response:
    account = await db.get(Account, _account_id(user))
    return render(request, "resident/alerts.html", {"account": account})


@router.post("/resident/alerts")
async def alerts(request: Request, db: DbSession, user: Resident, form: CheckedForm) -> Response:
    account = await db.get(Account, _account_id(user))
    assert account is not None
    email = form_text(form, "email")
    webhook = form_text(form, "webhook_url")
    errors: dict[str, str] = {}
    if email and ("@" not in email or " " in email or len(email) > 254):
        errors["email"] = "resident.alerts.bad_email"
    if webhook and household_webhook_problem(webhook) is not None:
        errors["webhook_url"] = "resident.alerts.bad_webhook"
    if errors:
        return render(request, "resident/alerts.html", {
            "account": account, "errors": errors, "email": email, "webhook_url": webhook},
            status=422)
    language = form_text(form, "language")
    account.email = email or None
    account.webhook_url = webhook or None
    # The signing key is made with the first address and kept when the address changes, so a
    # receiver keeps working; "new key" replaces it (e.g. after it leaked).
    if account.webhook_url and (not account.webhook_secret or form_text(form, "new_secret")):
        account.webhook_secret = secrets.token_urlsafe(32)
    if not account.webhook_url:
        account.webhook_secret = None
    if language in ("de", "en"):
        account.language = language
    db.add(account)
    await db.commit()
    return RedirectResponse("/resident/alerts?notice=resident.alerts.saved", status_code=303)


@router.get("/resident/statement.pdf")
async def statement(request: Request, db: DbSession, user: Resident) -> Response:
    account = await db.get(Account, _account_id(user))
    assert account is not None
    return await statement_response(request, db, page_site(request), account)
