"""Who may charge: rfid's decision (badge, validity, concurrent sessions) with the wallet's answer,
and the tariff in words in the account's language for the driver's display.

`authorize_badge` is what the OCPP station service calls for Authorize (through
`sessions.BillingService.authorize`); who pays is `billing`'s decision, and the start of a
transaction asks the wallet again, for real, by opening the hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from billing import PaidUseFlow
from csms.charging.cost_messages import tariff_in_words
from csms.inventory.models import Tariff
from csms.ocpp.events import AuthDecision, IdToken, StationRef
from rfid.authorisation import personal_message


async def station_tariff(session: AsyncSession, station: StationRef) -> dict[str, Any]:
    if station.tariff_id is None:
        return {}  # not approved with a tariff: bills nothing
    tariff = await session.get(Tariff, (station.site_id, station.tariff_id))
    return dict(tariff.document) if tariff is not None else {"id": station.tariff_id}


async def authorize_badge(
    flow: PaidUseFlow, session: AsyncSession, station: StationRef, token: IdToken, now: datetime
) -> AuthDecision:
    """The flow's decision for the badge at this station, with the tariff in words in the
    account's language for the driver's display."""
    payer = await flow.authorize(session, station.device(), token.value, now)
    decision = payer.decision
    tariff = await station_tariff(session, station)
    words = tariff_in_words(tariff, payer.language)
    if payer.badge is None:
        return AuthDecision(
            decision.status,
            reason=decision.reason,
            personal_message=personal_message(decision, language="de", tariff=words),
        )
    return AuthDecision(
        decision.status,
        account_id=decision.account_id,
        expires_at=decision.valid_until,
        reason=decision.reason,
        personal_message=personal_message(decision, language=payer.language, tariff=words),
        language=payer.language,
    )
