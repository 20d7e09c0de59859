"""Signed-in browsers: a random cookie secret, stored only as SHA-256, with its CSRF token."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.web.models import WebSession, WebUser

SESSION_COOKIE = "vh_session"
SESSION_LIFETIME = timedelta(days=14)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def open_session(db: AsyncSession, user: WebUser, now: datetime) -> str:
    """A new session for `user`; returns the cookie value. Flushes."""
    assert user.id is not None
    secret = secrets.token_urlsafe(32)
    db.add(WebSession(id_sha256=_sha256(secret), user_id=user.id,
                      csrf=secrets.token_urlsafe(24), created_at=now,
                      expires_at=now + SESSION_LIFETIME))
    await db.flush()
    return secret


async def session_user(
    db: AsyncSession, cookie: str | None, now: datetime
) -> tuple[WebSession, WebUser] | None:
    """The live session of this cookie and its user, or None (unknown, ended, expired, or the
    user disabled)."""
    if not cookie:
        return None
    row = await db.get(WebSession, _sha256(cookie))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    user = await db.get(WebUser, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return row, user


async def end_session(db: AsyncSession, cookie: str, now: datetime) -> None:
    row = await db.get(WebSession, _sha256(cookie))
    if row is not None and row.ended_at is None:
        row.ended_at = now
        db.add(row)
        await db.flush()


async def end_sessions_of(db: AsyncSession, user: WebUser, now: datetime) -> None:
    await db.exec(
        update(WebSession)
        .where(col(WebSession.user_id) == user.id, col(WebSession.ended_at).is_(None))
        .values(ended_at=now)
    )


async def live_sessions(db: AsyncSession, user: WebUser, now: datetime) -> int:
    query = select(WebSession).where(
        col(WebSession.user_id) == user.id, col(WebSession.ended_at).is_(None),
        col(WebSession.expires_at) > now)
    return len((await db.exec(query)).all())
