"""Writing alerts to the outbox (`wallet.models.AlertOutbox`) inside the caller's transaction;
`wallet.notify.deliver_pending` delivers them after commit.

`raise_alert` is the one way an alert is written, by the wallet and by the code that uses it
(billing's "charging_stopped", rfid's suspected badge clone). Its `audience` says who reads it:
the household (`account`: e-mail and webhook) or the operators (`staff`: the webhook only, never
an e-mail to the household).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alerts import Alert
from wallet.errors import InvalidInput
from wallet.models import AlertOutbox


class Audience(StrEnum):
    ACCOUNT = "account"  # the household: e-mail and webhook
    STAFF = "staff"  # the operators: webhook only


async def raise_alert(
    session: AsyncSession,
    *,
    account_id: str,
    kind: str,
    payload: dict[str, Any],
    at: datetime,
    audience: str = Audience.ACCOUNT,
) -> AlertOutbox:
    """Write one alert about `account_id` to the outbox; it is delivered after the caller
    commits (and never, if the caller rolls back). Flushes, does not commit."""
    if audience not in tuple(Audience):
        raise InvalidInput(f"not an audience: {audience!r} (account or staff)", field="audience")
    if at.tzinfo is None:
        raise InvalidInput("instant must be timezone-aware", field="at")
    row = AlertOutbox(account_id=account_id, kind=kind, payload=dict(payload), created_at=at,
                      audience=Audience(audience).value)
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
