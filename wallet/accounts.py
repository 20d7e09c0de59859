"""Accounts as their site knows them: find one by (site, ref), choose a new account's key.

An account's `ref` (`a-01`) is unique per site only; its `id` is the internal key every table
refers to (see `wallet.models.Account`). Code that takes an account from a person (API path,
CLI argument, site file) resolves it here, within a site, and hands the `id` on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.models import Account

ID_MAX = 64


async def account_by_ref(session: AsyncSession, site_id: str, ref: str) -> Account | None:
    """The account `ref` of `site_id`, or None."""
    query = select(Account).where(col(Account.site_id) == site_id, col(Account.ref) == ref)
    return (await session.exec(query)).one_or_none()


async def accounts_by_ref(session: AsyncSession, ref: str) -> Sequence[Account]:
    """Every account called `ref`, on whichever site, by site (for an installation-wide caller
    that must say which site it means when there are several)."""
    query = select(Account).where(col(Account.ref) == ref).order_by(col(Account.site_id))
    return (await session.exec(query)).all()


async def refs_of(session: AsyncSession, ids: Sequence[str]) -> dict[str, str]:
    """Internal id -> ref for the given accounts (for answers that show accounts)."""
    if not ids:
        return {}
    query = select(Account.id, Account.ref).where(col(Account.id).in_(set(ids)))
    return {account_id: ref for account_id, ref in (await session.exec(query)).all()}


async def new_account_id(session: AsyncSession, site_id: str, ref: str) -> str:
    """The internal id for a new account `ref` of `site_id`: `ref` itself while no account
    anywhere has that id, else `site_id:ref`, else (taken or too long) a random `acct-` id."""
    for candidate in (ref, f"{site_id}:{ref}"):
        if len(candidate) <= ID_MAX and await session.get(Account, candidate) is None:
            return candidate
    while True:
        candidate = f"acct-{uuid.uuid4().hex}"
        if await session.get(Account, candidate) is None:
            return candidate
