"""Minting and checking API tokens. A token reads `vh_<id>_<secret>`; only SHA-256 of the secret
is stored (the secret is 256 random bits, so a slow hash adds nothing)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.models import Reader
from csms.auth.models import ApiToken
from csms.inventory.models import Site
from wallet.accounts import account_by_ref
from wallet.models import Account

ROLES = ("admin", "owner", "installer", "resident", "reader")


class TokenScopeError(ValueError):
    """A token request whose role and scope do not fit together; names the field."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role, and the site (and account, for residents; reader, for readers)
    the token is bound to."""

    token_id: str
    role: str
    site_id: str | None
    account_id: str | None  # the account's internal key (`account.id`)
    account_ref: str | None = None  # the same account as its site calls it
    reader_id: str | None = None  # the badge reader a `reader` token speaks for


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    role: str,
    now: datetime,
    site_id: str | None = None,
    account_id: str | None = None,
    reader_id: str | None = None,
    label: str | None = None,
) -> str:
    """Store a new token and return its one-time plain text. Flushes, does not commit."""
    if role not in ROLES:
        raise TokenScopeError(f"role: must be one of {', '.join(ROLES)}, not {role!r}")
    if role in ("owner", "installer", "resident", "reader") and site_id is None:
        raise TokenScopeError(f"site: a {role} token needs --site")
    if role == "resident" and account_id is None:
        raise TokenScopeError("account: a resident token needs --account")
    if role != "resident" and account_id is not None:
        raise TokenScopeError("account: only resident tokens are bound to an account")
    if role == "reader" and reader_id is None:
        raise TokenScopeError("reader: a reader token needs --reader")
    if role != "reader" and reader_id is not None:
        raise TokenScopeError("reader: only reader tokens are bound to a reader")
    if site_id is not None and await session.get(Site, site_id) is None:
        raise TokenScopeError(f"site: unknown site {site_id!r}")
    if reader_id is not None:
        reader = await session.get(Reader, reader_id)
        # The same answer whether or not another site has such a reader.
        if reader is None or reader.site_id != site_id:
            raise TokenScopeError(f"reader: unknown reader {reader_id!r} on site {site_id!r}")
    if account_id is not None and site_id is not None:
        # `account_id` is the account's id on its site (its ref); the token keeps the key.
        account = await account_by_ref(session, site_id, account_id)
        if account is None:
            raise TokenScopeError(f"account: unknown account {account_id!r} on site {site_id!r}")
        account_id = account.id
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=token_id, secret_sha256=_digest(secret), role=role, site_id=site_id,
            account_id=account_id, reader_id=reader_id, label=label, created_at=now,
        )
    )
    await session.flush()
    return f"vh_{token_id}_{secret}"


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """The principal for a presented token, or None for an unknown, revoked or forged one."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != "vh" or not token_id or not secret:
        return None
    stored = await session.get(ApiToken, token_id)
    if stored is None or stored.revoked_at is not None:
        return None
    if not hmac.compare_digest(stored.secret_sha256, _digest(secret)):
        return None
    account = await session.get(Account, stored.account_id) if stored.account_id else None
    return Principal(stored.id, stored.role, stored.site_id, stored.account_id,
                     account.ref if account is not None else None, stored.reader_id)


async def has_admin_token(session: AsyncSession) -> bool:
    found = await session.exec(select(ApiToken.id).where(ApiToken.role == "admin").limit(1))
    return found.first() is not None


class TokenNotFound(LookupError):
    """No token with this id (within the caller's reach)."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"unknown token {token_id!r}")
        self.token_id = token_id


def token_id_of(text: str) -> str:
    """The id a token is known by: `TOKEN_ID` itself, or taken from a whole `vh_<id>_<secret>`
    (so a leaked token can be revoked from what leaked)."""
    if text.startswith("vh_"):
        return text.split("_", 2)[1]
    return text


async def list_tokens(
    session: AsyncSession, *, site_id: str | None = None, include_revoked: bool = False
) -> list[dict[str, Any]]:
    """Tokens as they may be shown: id, role, scope, label, dates. Never the secret or its
    hash. `site_id` None: every token; else that site's tokens only."""
    query = select(ApiToken, Account.ref).outerjoin(
        Account, col(Account.id) == col(ApiToken.account_id)
    )
    if site_id is not None:
        query = query.where(col(ApiToken.site_id) == site_id)
    if not include_revoked:
        query = query.where(col(ApiToken.revoked_at).is_(None))
    rows = (await session.exec(query.order_by(col(ApiToken.created_at), col(ApiToken.id)))).all()
    return [token_view(token, ref) for token, ref in rows]


def token_view(token: ApiToken, account_ref: str | None) -> dict[str, Any]:
    return {
        "id": token.id,
        "role": token.role,
        "site_id": token.site_id,
        "account_id": account_ref,
        "reader_id": token.reader_id,
        "label": token.label,
        "created_at": token.created_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


async def revoke_token(
    session: AsyncSession, token_id: str, *, now: datetime, site_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Revoke a token at once (every request checks the database, on every node); the view and
    whether it was active until now. `site_id`: only a token of that site is found (an owner's
    reach). A second revocation keeps the first time. Flushes, does not commit."""
    token = await session.get(ApiToken, token_id_of(token_id), with_for_update=True)
    if token is None or (site_id is not None and token.site_id != site_id):
        raise TokenNotFound(token_id_of(token_id))
    was_active = token.revoked_at is None
    if was_active:
        token.revoked_at = now
        session.add(token)
        await session.flush()
    account = await session.get(Account, token.account_id) if token.account_id else None
    return token_view(token, account.ref if account is not None else None), was_active
