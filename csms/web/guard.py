"""Who is looking at a page: the session cookie's user, their language and site, the same
scope checks the API makes (`csms.api.deps.Principal`), and CSRF on every form.

`Depends(signed_in("resident"))` admits residents; admins are admitted wherever owners or
installers are. Without a session the browser is sent to /signin and back afterwards.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from csms.api.deps import STAFF_ROLES, DbSession, Principal, open_staff_action, request_now
from csms.auth.tokens import Principal as TokenPrincipal
from csms.inventory.models import Site
from csms.web.i18n import LANGUAGES, page_language
from csms.web.models import WebUser
from csms.web.render import CSRF_COOKIE, LANG_COOKIE
from csms.web.sessions import SESSION_COOKIE, session_user
from wallet.models import Account


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """A signed-in user on a page their role does not open."""


class FormExpired(Exception):
    """A form without the CSRF token of this browser."""


def now_of(request: Request) -> datetime:
    return request_now(request)


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def public_page(request: Request) -> None:
    """For pages anyone may open (sign-in, set password): only the language."""
    request.state.lang = page_language(
        request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), None,
        request.headers.get("accept-language"))


async def _site_of(db: AsyncSession, request: Request, user: WebUser) -> Site | None:
    if user.site_id is not None:
        return await db.get(Site, user.site_id)
    # An admin works on the site named by ?site=, else the first one.
    wanted = request.query_params.get("site")
    if wanted:
        return await db.get(Site, wanted)
    return (await db.exec(select(Site).order_by(col(Site.id)))).first()


def principal_of(user: WebUser, account_ref: str | None, site_id: str | None) -> Principal:
    return Principal(TokenPrincipal(
        token_id=f"user-{user.id}", role=user.role,
        site_id=site_id if user.role == "admin" else user.site_id,
        account_id=user.account_id, account_ref=account_ref))


def signed_in(*roles: str) -> Callable[..., Awaitable[WebUser]]:
    admitted = set(roles)
    if admitted & {"owner", "installer"}:
        admitted.add("admin")

    async def dependency(request: Request, db: DbSession) -> WebUser:
        now = now_of(request)
        found = await session_user(db, request.cookies.get(SESSION_COOKIE), now)
        if found is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        session, user = found
        request.state.web_session = session
        request.state.web_user = user
        asked = request.query_params.get("lang")
        if asked in LANGUAGES and asked != user.language:
            user.language = asked
            db.add(user)
            await db.commit()
        request.state.lang = page_language(asked, None, user.language,
                                           request.headers.get("accept-language"))
        site = await _site_of(db, request, user)
        # Detached, so that a page's rollback (a refused top-up) does not expire what the
        # layout shows (a lazy load outside the async session fails).
        for row in (session, user, site):
            if row is not None and row in db:
                db.expunge(row)
        request.state.web_site = site
        if user.role not in admitted:
            raise PageForbidden()
        account_ref = None
        if user.account_id is not None:
            account = await db.get(Account, user.account_id)
            account_ref = account.ref if account is not None else None
        principal = principal_of(user, account_ref, site.id if site is not None else None)
        request.state.principal = principal
        if user.role in STAFF_ROLES and request.method not in ("GET", "HEAD"):
            principal.action = open_staff_action(request, db, principal, channel="web")
        return user

    return dependency


def page_principal(request: Request) -> Principal:
    """The signed-in user's principal (after `signed_in` ran for this request)."""
    principal: Principal = request.state.principal
    return principal


def page_site(request: Request) -> Site:
    """The site the signed-in user works on (their own; an admin's chosen one)."""
    site: Site | None = request.state.web_site
    if site is None:
        raise PageForbidden()
    return site


async def _checked_form(request: Request, db: DbSession) -> FormData:
    form = await request.form()
    sent = form.get("csrf")
    session = getattr(request.state, "web_session", None)
    if session is None:
        found = await session_user(db, request.cookies.get(SESSION_COOKIE), now_of(request))
        session = found[0] if found is not None else None
    expected = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise FormExpired()
    return form


CheckedForm = Annotated[FormData, Depends(_checked_form)]


def form_text(form: FormData, name: str, default: str = "") -> str:
    value: Any = form.get(name, default)
    return value.strip() if isinstance(value, str) else default


def sign_in_location(next_path: str) -> str:
    return f"/signin?next={quote(next_path, safe='')}"
