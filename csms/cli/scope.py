"""Accounts and badges named on the command line, found within their site.

An account id (`a-01`) or a badge UID may exist on several sites. Given `--site`, it is looked
up there; without, it must exist on exactly one site, else `ScopeError` asks for `--site`.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rfid.models import Badge
from rfid.registry import BadgeNotFound, RegistryError
from rfid.uid import UidError, parse
from wallet.accounts import account_by_ref, accounts_by_ref
from wallet.models import Account


class ScopeError(Exception):
    """Message starts with the command-line argument it is about; exit code 2."""


async def cli_account(
    session: AsyncSession, ref: str, site: str | None, argument: str = "ACCOUNT"
) -> Account:
    """The account `ref` of `site`, or of the one site that has an account `ref`."""
    if site is not None:
        account = await account_by_ref(session, site, ref)
        if account is None:
            raise ScopeError(f"{argument}: unknown account {ref!r} on site {site!r}")
        return account
    found = await accounts_by_ref(session, ref)
    if not found:
        raise ScopeError(f"{argument}: unknown account {ref!r}")
    if len(found) > 1:
        sites = ", ".join(a.site_id for a in found)
        raise ScopeError(f"--site: account {ref!r} is on several sites ({sites}); name one")
    return found[0]


async def cli_badge_site(session: AsyncSession, uid: str, site: str | None) -> str:
    """The site of badge `uid` (hex): `site` if given, else the one site that has it."""
    if site is not None:
        return site
    try:
        canonical = parse(uid, "hex").hex
    except UidError as error:
        raise RegistryError("uid", str(error)) from None
    sites = (await session.exec(
        select(Badge.site_id).where(col(Badge.uid) == canonical).order_by(col(Badge.site_id))
    )).all()
    if not sites:
        raise BadgeNotFound(canonical)
    if len(sites) > 1:
        raise ScopeError(f"--site: badge {canonical} is on several sites ({', '.join(sites)}); "
                         "name one")
    return sites[0]
