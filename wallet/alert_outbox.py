"""Writing alerts to the outbox (`wallet.models.AlertOutbox`) inside the caller's transaction;
`wallet.notify.deliver_pending` delivers them after commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alerts import Alert
from wallet.models import (
    AlertOutbox,
)


async def raise_alerts(
    session: AsyncSession, account_id: str, alerts: Sequence[Alert], at: datetime,
    facts: dict[str, Any],
) -> None:
    if not alerts:
        return
    await session.exec(
        AlertOutbox.__table__.insert(),  # type: ignore[attr-defined]
        params=[
            {"account_id": account_id, "kind": alert.kind.value, "created_at": at,
             "attempts": 0,
             "payload": {**facts, "threshold": None if alert.threshold is None
                         else str(alert.threshold)}}
            for alert in alerts
        ],
    )


async def raise_alert(
    session: AsyncSession, *, account_id: str, kind: str, payload: dict[str, Any],
    at: datetime, audience: str = "account",
) -> AlertOutbox:
    """TEMPORARY until the wallet-split branch lands (its version replaces this)."""
    row = AlertOutbox(account_id=account_id, kind=kind, payload=payload, created_at=at)
    session.add(row)
    return row
