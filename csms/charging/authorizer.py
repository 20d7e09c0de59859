"""Who may charge: rfid's decision (badge, validity, concurrent sessions) with the wallet's answer,
and the tariff in words in the account's language for the driver's display.

`authorize_badge` is what the OCPP station service calls for Authorize (through
`sessions.BillingService.authorize`); the start of a transaction asks the wallet again, for real,
by opening the hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.charging.cost_messages import tariff_in_words
from csms.charging.models import ChargingSession, SessionStatus
from csms.inventory.models import Tariff
from csms.ocpp.events import AuthDecision, AuthStatus, IdToken, StationRef
from csms.ocpp.local_lists import station_badge
from rfid.authorisation import AuthStatus as AuthStatus_
from rfid.authorisation import CreditAnswer, Decision, decide, personal_message
from rfid.registry import badge_state
from wallet.credit import Mode
from wallet.models import Account
from wallet.service import credit_decision, get_policy

log = structlog.get_logger("csms.charging.authorizer")


@dataclass(frozen=True, slots=True)
class BadgeOwner:
    """The account behind an idTag, whatever the badge's standing (for billing late sessions)."""

    account_id: str
    language: str
    badge_status: str
    max_sessions: int


async def badge_owner(
    session: AsyncSession, station: StationRef, id_tag: str
) -> tuple[BadgeOwner, Any] | None:
    try:
        found = await station_badge(session, station, id_tag)
    except ValueError:
        return None
    if found is None:
        return None
    badge = found.badge
    account = await session.get(Account, badge.account_id)
    language = account.language if account is not None else "de"
    return BadgeOwner(badge.account_id, language, badge.status, badge.max_sessions), badge


async def station_tariff(session: AsyncSession, station: StationRef) -> dict[str, Any]:
    tariff = await session.get(Tariff, (station.site_id, station.tariff_id))
    return dict(tariff.document) if tariff is not None else {"id": station.tariff_id}


async def open_sessions_of(session: AsyncSession, station: StationRef, id_tag: str) -> int:
    count = (
        await session.exec(
            select(func.count())
            .select_from(ChargingSession)
            .where(col(ChargingSession.site_id) == station.site_id)
            .where(col(ChargingSession.id_tag) == id_tag)
            .where(col(ChargingSession.status) == SessionStatus.ACTIVE)
        )
    ).one()
    return int(count)


async def authorize_badge(
    session: AsyncSession, station: StationRef, token: IdToken, now: datetime
) -> AuthDecision:
    """Badge standing, then account mode and credit (a blocked account may not start)."""
    found = await badge_owner(session, station, token.value)
    tariff = await station_tariff(session, station)
    if found is None:
        return AuthDecision(
            AuthStatus.INVALID,
            reason="unknown-badge",
            personal_message=_unknown_text(tariff),
        )
    owner, badge = found
    zone = ZoneInfo(station.timezone)
    policy = await get_policy(session, owner.account_id)
    credit = await credit_decision(session, owner.account_id, now)
    answer = CreditAnswer(credit.may_start, credit.reason.value)
    decision = decide(
        badge_state(badge),
        now=now,
        tz=zone,
        account_active=policy.mode is not Mode.BLOCKED,
        open_sessions=await open_sessions_of(session, station, token.value),
        max_sessions=owner.max_sessions,
        credit=answer,
    )
    words = tariff_in_words(tariff, owner.language)
    return AuthDecision(
        AuthStatus(decision.status.value),
        account_id=decision.account_id,
        expires_at=decision.valid_until,
        reason=decision.reason,
        personal_message=personal_message(decision, language=owner.language, tariff=words),
        language=owner.language,
    )


def _unknown_text(tariff: dict[str, Any]) -> str:
    unknown = Decision(AuthStatus_.INVALID, "unknown-badge", "no badge for this idTag")
    return personal_message(unknown, language="de", tariff=tariff_in_words(tariff, "de"))
