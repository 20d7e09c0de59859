"""Request dependencies: the database session and the caller's principal.

Every /api route declares the roles it admits with `require_roles(...)`; scope checks
(`ensure_site`, `ensure_account`) turn a token bound to another site or account into 403.

Accounts are named in paths and parameters by their id on their site (`a-01`, the account's
`ref`); `site_account` finds one within the caller's site, or for an admin token within the
site named by the `site` query parameter (needed only when the id is on several sites). A
site-bound token never learns whether an id exists on another site.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.audit.record import PendingAction, watch
from csms.auth.tokens import Principal as TokenPrincipal
from csms.auth.tokens import authenticate
from csms.inventory.models import Site
from wallet.accounts import account_by_ref, accounts_by_ref
from wallet.models import Account

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer vh_…` API token")


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with factory() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_session)]


class Principal:
    """The authenticated caller, with the scope checks every route uses."""

    def __init__(self, token: TokenPrincipal) -> None:
        self.token_id = token.token_id
        self.role = token.role
        self.site_id = token.site_id
        self.account_id = token.account_id  # internal key
        self.account_ref = token.account_ref  # as the site calls it
        self.reader_id = token.reader_id  # the one reader a `reader` token speaks for
        # The staff action this request is (changes by staff only); the scope checks name its
        # site.
        self.action: PendingAction | None = None

    def ensure_site(self, site_id: str) -> None:
        if self.action is not None:
            self.action.note_site(site_id)
        if self.role != "admin" and self.site_id != site_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this token is bound to site {self.site_id!r}, not {site_id!r}",
            )

    def ensure_account(self, site_id: str, account_id: str, ref: str | None = None) -> None:
        """`account_id` is the internal key; `ref` (the site's name for it) is for the message."""
        self.ensure_site(site_id)
        if self.role == "resident" and self.account_id != account_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this token is bound to account {self.account_ref!r}, "
                f"not {ref if ref is not None else account_id!r}",
            )


async def site_account(
    session: AsyncSession, principal: Principal, ref: str, site: str | None = None
) -> Account:
    """The account `ref` as the caller may reach it: within the token's site, or for an admin
    within `site` (or the one site that has `ref`). 404 when there is none there (the same
    answer whether or not another site has one), 409 naming the `site` parameter when an admin
    leaves open which of several sites is meant, 403 for a resident's neighbour."""
    site_id = site if site is not None else principal.site_id
    if site_id is not None:
        principal.ensure_site(site_id)
        account = await account_by_ref(session, site_id, ref)
        if account is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {ref!r}")
    else:
        found = await accounts_by_ref(session, ref)
        if not found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {ref!r}")
        if len(found) > 1:
            sites = ", ".join(a.site_id for a in found)
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"site: account {ref!r} exists on several sites ({sites}); "
                "name one with the `site` query parameter",
            )
        account = found[0]
        if principal.action is not None:
            principal.action.note_site(account.site_id)
    if principal.role == "resident" and principal.account_id != account.id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this token is bound to account {principal.account_ref!r}, not {ref!r}",
        )
    return account


def request_now(request: Request) -> datetime:
    """The node's clock (tests set one), else the wall clock."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if callable(clock) else datetime.now(UTC)


async def scoped_site(session: AsyncSession, principal: Principal, site_id: str) -> Site:
    """The site `site_id` after the caller's scope check: 403 for another site's token, 404
    when there is none."""
    principal.ensure_site(site_id)
    site = await session.get(Site, site_id)
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown site {site_id!r}")
    return site


STAFF_ROLES = frozenset({"admin", "owner", "installer"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def open_staff_action(
    request: Request, session: AsyncSession, principal: Principal, channel: str = "api"
) -> PendingAction:
    """The audit row of a change staff ask for: written with the request's first commit, and
    finished (status, outcome) by `csms.api.observe.Observe` as the answer goes out. The action
    is the route (`POST /api/v1/stations/{station_id}/approve`), the target its path values."""
    path = request.url.path
    template = getattr(request.scope.get("route"), "path", path)
    # The route knows its path below the router's prefix (`/api/v1`): put the prefix back.
    depth = path.count("/") - template.count("/")
    if depth > 0:
        template = "/".join(path.split("/")[: depth + 1]) + template
    target = " ".join(f"{name}={value}" for name, value in request.path_params.items())
    clock = getattr(request.app.state, "clock", None)
    pending = PendingAction(
        channel=channel, actor=f"{principal.role}:{principal.token_id}", role=principal.role,
        token_id=principal.token_id, action=f"{request.method} {template}",
        target=target or None, home_site=principal.site_id,
        at=clock() if clock is not None else datetime.now(UTC),
    )
    watch(session.sync_session, pending)
    request.state.audit = pending
    return pending


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only `roles`: 401 without a valid token, 403 for another role."""
    admitted = frozenset(roles)

    async def dependency(
        request: Request,
        session: DbSession,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API token: send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        token = await authenticate(session, credentials.credentials)
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid or revoked API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = Principal(token)
        request.state.principal = principal  # for the access log
        if token.role not in admitted:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {token.role!r} may not do this; admitted: {', '.join(sorted(admitted))}",
            )
        if token.role in STAFF_ROLES and request.method not in _READS:
            principal.action = open_staff_action(request, session, principal)
        return principal

    dependency.admitted_roles = admitted  # type: ignore[attr-defined]  # read by the route audit test
    return dependency

