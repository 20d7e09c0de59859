"""Writing alerts to the outbox (`wallet.models.AlertOutbox`) inside the caller's transaction;
`wallet.notify.deliver_pending` delivers them after commit.

`raise_alert` is the one way an alert is written, by the wallet and by the code that uses it
(billing's "charging_stopped", rfid's suspected badge clone, a device's fault). Its `audience`
says who reads it: the household (`account`: e-mail and webhook) or the operators (`staff`: the
webhook only, never an e-mail to the household).

An alert is about a household (`account_id`) or about a site's machine or meter that belongs to
no household (`account_id=None`): those are for operators only, so they must have audience
"staff" and name their `site_id`. A household's alert records its account's site as `site_id`
(looked up when not given, refused when another site is given), so every row says which site it
concerns and operators can filter the outbox by site.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alerts import Alert
from wallet.errors import InvalidInputs, NotFound
from wallet.ledger import site_info
from wallet.models import Account, AlertOutbox


class Audience(StrEnum):
    ACCOUNT = "account"  # the household: e-mail and webhook
    STAFF = "staff"  # the operators: webhook only


async def raise_alert(
    session: AsyncSession,
    *,
    account_id: str | None,
    kind: str,
    payload: dict[str, Any],
    at: datetime,
    audience: str = Audience.ACCOUNT,
    site_id: str | None = None,
) -> AlertOutbox:
    """Write one alert about `account_id` (or, with `account_id=None`, about a device of
    `site_id`, for staff) to the outbox; it is delivered after the caller commits (and never, if
    the caller rolls back). Flushes, does not commit.

    Raises `InvalidInputs` listing every problem with its field (`audience`, `at`, `site_id`) and
    `NotFound` for an unknown account or site (field `account_id` or `site_id`); nothing is
    written then."""
    errors: list[tuple[str, str]] = []
    if audience not in tuple(Audience):
        errors.append(("audience", f"not an audience: {audience!r} (account or staff)"))
    if at.tzinfo is None:
        errors.append(("at", "instant must be timezone-aware"))
    if account_id is None:
        if audience in tuple(Audience) and audience != Audience.STAFF:
            errors.append(("audience", "an alert about no account is for staff only"))
        if not site_id:
            errors.append(("site_id", "an alert about no account must name its site"))
    if errors:
        raise InvalidInputs(errors)
    if account_id is not None:
        account = await session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id!r}", field="account_id")
        if site_id is not None and site_id != account.site_id:
            raise InvalidInputs([("site_id", f"{site_id!r} is not the site of account "
                                             f"{account.ref!r} ({account.site_id!r})")])
        site_id = account.site_id
    else:
        assert site_id is not None
        await site_info(session, site_id)  # NotFound (field site_id) for an unknown site
    row = AlertOutbox(account_id=account_id, site_id=site_id, kind=kind, payload=dict(payload),
                      created_at=at, audience=Audience(audience).value)
    session.add(row)
    await session.flush()
    return row


async def raise_alerts(
    session: AsyncSession, account_id: str, alerts: Sequence[Alert], at: datetime,
    facts: dict[str, Any],
) -> None:
    """The household's alerts a wallet movement crossed, with the movement's facts."""
    for alert in alerts:
        threshold = None if alert.threshold is None else str(alert.threshold)
        await raise_alert(session, account_id=account_id, kind=alert.kind.value,
                          payload={**facts, "threshold": threshold}, at=at)
