"""Turning a template into a page: the Jinja2 environment and what every template can use."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from csms.web.i18n import LANGUAGES, format_money, format_number, format_time, translator

TEMPLATES = Path(__file__).with_name("templates")
CSRF_COOKIE = "vh_csrf"
LANG_COOKIE = "vh_lang"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # [a, b] -> [(a, a), (b, b)]: option lists whose value is their label
    env.filters["zip_pairs"] = lambda values: [(v, v) for v in values]
    return env


def nav_for(role: str) -> list[tuple[str, str]]:
    """(path, catalog key) of the pages the role's menu shows, from the page modules' NAV."""
    from csms.web.mount import navigation

    return [(path, key) for roles, path, key in navigation() if role in roles]


def csrf_token(request: Request) -> str:
    """The token this page's forms carry: the session's, or (before sign-in) the one of the
    `vh_csrf` cookie, made now when the browser has none."""
    session = getattr(request.state, "web_session", None)
    if session is not None:
        return str(session.csrf)
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.new_csrf = token
    return str(token)


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang: str = getattr(request.state, "lang", None) or "de"
    user = getattr(request.state, "web_user", None)
    site = getattr(request.state, "web_site", None)
    timezone = site.timezone if site is not None else "Europe/Berlin"
    currency = site.currency if site is not None else "EUR"
    values: dict[str, Any] = {
        "request": request,
        "t": translator(lang),
        "lang": lang,
        "languages": LANGUAGES,
        "user": user,
        "site": site,
        "csrf": csrf_token(request),
        "nav": nav_for(user.role) if user is not None else [],
        "path": request.url.path,
        "money": lambda amount, cur=None: format_money(
            None if amount is None else Decimal(amount), cur or currency, lang),
        "number": lambda value, places=2: format_number(value, lang, places),
        "dt": lambda moment, date_only=False: format_time(moment, timezone, lang,
                                                          date_only=date_only),
    }
    if context:
        values.update(context)
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="lax",
                            secure=request.url.scheme == "https", path="/")
    response.headers["Cache-Control"] = "no-store"
    return response
