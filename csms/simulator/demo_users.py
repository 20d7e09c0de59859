"""The demo's people: one owner, one installer and two residents of the demo site, created on
the demo's first start with random passwords that are printed once (like the admin token)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from csms.db.engine import session_factory
from csms.inventory.models import Site
from csms.web.models import WebUser
from csms.web.passwords import hash_password
from csms.web.users import create_user

# (e-mail local part, role, account, language)
DEMO_PEOPLE = (
    ("owner", "owner", None, "de"),
    ("installer", "installer", None, "de"),
    ("keller", "resident", "a-01", "de"),
    ("yilmaz", "resident", "a-02", "en"),
)


async def ensure_demo_users(
    engine: AsyncEngine, site_id: str, now: datetime
) -> list[tuple[str, str, str]]:
    """Create the demo people of `site_id` unless the site has users already; returns
    (role, e-mail, password) of those created, for printing once."""
    created: list[tuple[str, str, str]] = []
    async with session_factory(engine)() as db:
        if await db.get(Site, site_id) is None:
            return []
        existing = (await db.exec(select(WebUser).where(col(WebUser.site_id) == site_id))).first()
        if existing is not None:
            return []
        for local, role, account, language in DEMO_PEOPLE:
            email = f"{local}@{site_id}.example.org"
            user, _ = await create_user(db, email=email, role=role, site_id=site_id,
                                        account_ref=account, language=language, now=now)
            password = secrets.token_urlsafe(9)
            user.password_hash = await hash_password(password)
            db.add(user)
            created.append((role, email, password))
        await db.commit()
    return created
