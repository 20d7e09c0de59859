"""The station service's default `Authorizer`: the badge's own standing (status, validity) on
the station's site, without wallet or limits. A node with billing plugs in billing's instead."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from billing import badge_standing
from csms.ocpp.events import AuthDecision, IdToken, StationRef


async def standing_authorizer(
    session: AsyncSession, station: StationRef, token: IdToken, now: datetime,
    *, starts: bool = False,
) -> AuthDecision:
    payer = await badge_standing(session, station.device(), token.value, now)
    decision = payer.decision
    return AuthDecision(
        decision.status,
        account_id=decision.account_id,
        expires_at=decision.valid_until,
        reason=decision.reason,
    )
