"""The one service for people who sign in: create (with a one-time set-password link), set a
password, check a sign-in against the throttle, list and disable. The CLI, the pages and the
JSON API all call these."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Site
from csms.web.models import WEB_ROLES, LoginFailure, PasswordLink, WebUser
from csms.web.passwords import (
    PasswordProblem,
    Throttle,
    check_new_password,
    hash_password,
    password_matches,
)
from wallet.accounts import account_by_ref
from wallet.models import Account

LINK_LIFETIME = timedelta(days=7)
LANGUAGES = ("de", "en")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserProblem(ValueError):
    """Bad input for a user; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normal_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise UserProblem("email", f"not an e-mail address: {email!r}")
    return value


async def create_user(
    db: AsyncSession, *, email: str, role: str, site_id: str | None, now: datetime,
    account_ref: str | None = None, language: str = "de",
) -> tuple[WebUser, str]:
    """Store a user without a password and return it with the one-time set-password token.
    Flushes, does not commit."""
    address = normal_email(email)
    account_id = await _checked_standing(db, role=role, site_id=site_id,
                                         account_ref=account_ref, language=language)
    taken = (await db.exec(select(WebUser).where(col(WebUser.email) == address))).first()
    if taken is not None:
        raise UserProblem("email", f"{address} already has a user")
    user = WebUser(email=address, role=role, site_id=site_id if role != "admin" else None,
                   account_id=account_id, language=language, created_at=now)
    db.add(user)
    await db.flush()
    return user, await new_password_link(db, user, now)


async def _checked_standing(
    db: AsyncSession, *, role: str, site_id: str | None, account_ref: str | None, language: str,
) -> str | None:
    """A user's role, site, account and language checked together; the account's id."""
    if role not in WEB_ROLES:
        raise UserProblem("role", f"must be one of {', '.join(WEB_ROLES)}, not {role!r}")
    if language not in LANGUAGES:
        raise UserProblem("language", f"must be de or en, not {language!r}")
    if role != "admin":
        if site_id is None:
            raise UserProblem("site", f"a {role} belongs to one site")
        if await db.get(Site, site_id) is None:
            raise UserProblem("site", f"no site {site_id!r}")
    if role == "resident":
        if account_ref is None:
            raise UserProblem("account", "a resident belongs to one household account")
        assert site_id is not None
        account = await account_by_ref(db, site_id, account_ref)
        if account is None:
            raise UserProblem("account", f"no account {account_ref!r} on site {site_id!r}")
        return account.id
    if account_ref is not None:
        raise UserProblem("account", f"only residents belong to an account, not a {role}")
    return None


async def update_user(
    db: AsyncSession, user: WebUser, *, now: datetime, role: str | None = None,
    account_ref: str | None = None, language: str | None = None,
) -> WebUser:
    """Change a user's role, household or language (checked as at creation). A new role or
    household ends the user's open sessions: what they were shown is no longer theirs to see.
    Flushes, does not commit."""
    from csms.web.sessions import end_sessions_of

    new_role = role or user.role
    if account_ref is None and new_role == "resident" and user.account_id is not None:
        account = await db.get(Account, user.account_id)
        account_ref = account.ref if account is not None else None
    account_id = await _checked_standing(db, role=new_role, site_id=user.site_id,
                                         account_ref=account_ref,
                                         language=language or user.language)
    changed_standing = (new_role, account_id) != (user.role, user.account_id)
    user.role, user.account_id = new_role, account_id
    user.language = language or user.language
    db.add(user)
    if changed_standing:
        await end_sessions_of(db, user, now)
    await db.flush()
    return user


async def new_password_link(db: AsyncSession, user: WebUser, now: datetime) -> str:
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    db.add(PasswordLink(token_sha256=_sha256(token), user_id=user.id, created_at=now,
                        expires_at=now + LINK_LIFETIME))
    await db.flush()
    return token


def set_password_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/set-password/{token}"


async def link_user(db: AsyncSession, token: str, now: datetime) -> WebUser | None:
    """The user a set-password link is for, while it is unused and unexpired."""
    link = await db.get(PasswordLink, _sha256(token))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    user = await db.get(WebUser, link.user_id)
    return None if user is None or user.disabled_at is not None else user


async def set_password_by_link(
    db: AsyncSession, token: str, password: str, now: datetime
) -> WebUser:
    """Use the link once: the password is set and the link spent. Flushes."""
    user = await link_user(db, token, now)
    if user is None:
        raise UserProblem("link", "this link is unknown, used or expired")
    try:
        check_new_password(password)
    except PasswordProblem as problem:
        raise UserProblem("password", str(problem).split(": ", 1)[1]) from None
    link = await db.get(PasswordLink, _sha256(token))
    assert link is not None
    link.used_at = now
    user.password_hash = await hash_password(password)
    db.add_all([link, user])
    await db.flush()
    return user


@dataclass(frozen=True, slots=True)
class SignIn:
    user: WebUser | None  # None: refused
    wait: timedelta | None = None  # set when refused by the throttle


async def check_sign_in(
    db: AsyncSession, email: str, password: str, client: str, now: datetime,
    throttle: Throttle = Throttle(),
) -> SignIn:
    """The user when e-mail and password match and the throttle allows; a failure is recorded
    (flushed) so repeated guesses slow down by e-mail and by client address."""
    address = email.strip().lower()[:254]
    since = now - throttle.window
    by_email = (await db.exec(select(LoginFailure.at).where(
        col(LoginFailure.email) == address, col(LoginFailure.at) > since))).all()
    by_client = (await db.exec(select(LoginFailure.at).where(
        col(LoginFailure.client) == client, col(LoginFailure.at) > since))).all()
    wait = throttle.wait(by_email, by_client, now)
    if wait is not None:
        return SignIn(None, wait)
    user = (await db.exec(select(WebUser).where(col(WebUser.email) == address))).first()
    ok = await password_matches(user.password_hash if user else None, password)
    if ok and user is not None and user.disabled_at is None:
        return SignIn(user)
    db.add(LoginFailure(email=address, client=client[:64], at=now))
    await db.flush()
    return SignIn(None)


async def site_users(db: AsyncSession, site_id: str) -> Sequence[WebUser]:
    query = select(WebUser).where(col(WebUser.site_id) == site_id).order_by(col(WebUser.email))
    return (await db.exec(query)).all()


async def disable_user(db: AsyncSession, user: WebUser, now: datetime) -> None:
    """The user can no longer sign in; their open sessions end now. Flushes."""
    from csms.web.sessions import end_sessions_of

    user.disabled_at = now
    db.add(user)
    await end_sessions_of(db, user, now)
    await db.flush()
