"""Signing in and out, setting a password from a one-time link, and `/` sending each person to
their area."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from csms.api.deps import DbSession
from csms.web.guard import (
    CheckedForm,
    client_of,
    form_text,
    now_of,
    public_page,
)
from csms.web.passwords import MIN_PASSWORD_LENGTH
from csms.web.render import render
from csms.web.sessions import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    end_session,
    open_session,
    session_user,
)
from csms.web.users import UserProblem, check_sign_in, link_user, set_password_by_link

router = APIRouter()
Public = Annotated[None, Depends(public_page)]

PAGES: list[tuple[str, str]] = [("anonymous", "/signin")]

# Where each role lands after signing in.
HOME = {"resident": "/resident", "owner": "/owner", "installer": "/installer", "admin": "/owner"}


def _safe_next(value: str | None, fallback: str) -> str:
    """Only a path of this site (no `//host`, no scheme): an open redirect is a phishing aid."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return fallback


@router.get("/")
async def home(request: Request, db: DbSession) -> Response:
    found = await session_user(db, request.cookies.get(SESSION_COOKIE), now_of(request))
    if found is None:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse(HOME.get(found[1].role, "/signin"), status_code=303)


@router.get("/signin")
async def signin_page(request: Request, _: Public) -> Response:
    notice = "signin.signed_out" if request.query_params.get("out") else None
    return render(request, "signin.html", {
        "next": request.query_params.get("next", ""), "notice": notice, "email": ""})


@router.post("/signin")
async def signin(request: Request, db: DbSession, form: CheckedForm, _: Public) -> Response:
    email = form_text(form, "email")
    password = str(form.get("password") or "")
    now = now_of(request)
    result = await check_sign_in(db, email, password, client_of(request), now)
    if result.user is None:
        await db.commit()  # the failure counts for the throttle
        error = ("signin.throttled", int(result.wait.total_seconds())) if result.wait else (
            "signin.failed", 0)
        return render(request, "signin.html", {
            "next": form_text(form, "next"), "error": error, "email": email},
            status=429 if result.wait else 401)
    cookie = await open_session(db, result.user, now)
    await db.commit()
    target = _safe_next(form_text(form, "next"), HOME.get(result.user.role, "/"))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True,
        samesite="lax", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/signout")
async def signout(request: Request, db: DbSession, form: CheckedForm) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await end_session(db, cookie, now_of(request))
        await db.commit()
    response = RedirectResponse("/signin?out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/set-password/{token}")
async def set_password_page(request: Request, token: str, db: DbSession, _: Public) -> Response:
    user = await link_user(db, token, now_of(request))
    if user is None:
        return render(request, "set_password.html", {"bad_link": True}, status=404)
    request.state.lang = request.state.lang if request.query_params.get("lang") else user.language
    return render(request, "set_password.html", {"email": user.email,
                                                 "min_length": MIN_PASSWORD_LENGTH})


@router.post("/set-password/{token}")
async def set_password(
    request: Request, token: str, db: DbSession, form: CheckedForm, _: Public
) -> Response:
    password = str(form.get("password") or "")
    repeat = str(form.get("repeat") or "")
    user = await link_user(db, token, now_of(request))
    if user is None:
        return render(request, "set_password.html", {"bad_link": True}, status=404)
    if password != repeat:
        return render(request, "set_password.html", {
            "email": user.email, "error": "password.mismatch",
            "min_length": MIN_PASSWORD_LENGTH}, status=422)
    try:
        await set_password_by_link(db, token, password, now_of(request))
    except UserProblem as problem:
        key = "password.too_short" if problem.field == "password" else "password.bad_link"
        return render(request, "set_password.html", {
            "email": user.email, "error": key, "min_length": MIN_PASSWORD_LENGTH}, status=422)
    await db.commit()
    return render(request, "signin.html", {"next": "", "notice": "password.done",
                                           "email": user.email})
