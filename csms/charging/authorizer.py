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

from billing import DeviceRef, PaidUseFlow, badge_standing
from csms.charging.cost_messages import tariff_in_words
from csms.inventory.models import Tariff
from csms.ocpp.events import AuthDecision, AuthStatus, IdToken, StationRef
from rfid.authorisation import personal_message
from wallet.accounts import account_by_ref


async def station_tariff(session: AsyncSession, station: StationRef) -> dict[str, Any]:
    if station.tariff_id is None:
        return {}  # not approved with a tariff: bills nothing
    tariff = await session.get(Tariff, (station.site_id, station.tariff_id))
    return dict(tariff.document) if tariff is not None else {"id": station.tariff_id}


async def authorize_badge(
    flow: PaidUseFlow, session: AsyncSession, station: StationRef, token: IdToken, now: datetime,
    *, starts: bool = False,
) -> AuthDecision:
    """The flow's decision for the badge at this station, with the tariff in words in the
    account's language for the driver's display. The site's rules apply (as the station
    carries them): its limit of uses per badge, and its master pass (`master_pass_decision`)."""
    device = station.device()
    if station.master_pass_account is not None:
        master = await master_pass_decision(session, device, station.master_pass_account,
                                            token, now, starts=starts)
        if master is not None:
            return master
    payer = await flow.authorize(session, device, token.value, now)
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


async def master_pass_decision(
    session: AsyncSession, device: DeviceRef, master_ref: str, token: IdToken, now: datetime,
    *, starts: bool,
) -> AuthDecision | None:
    """For a badge of the site's master-pass account (OCPP 2.0.1 C_47-C_49): Accepted to stop
    any session on the site, whatever its wallet holds, and Blocked to start one. None for
    every other badge."""
    payer = await badge_standing(session, device, token.value, now)
    if payer.badge is None or payer.decision.account_id is None:
        return None
    master = await account_by_ref(session, device.site_id, master_ref)
    if master is None or master.id != payer.decision.account_id:
        return None
    if not payer.decision.accepted:
        return None  # a lost or expired master badge is refused as any other
    if starts:
        return AuthDecision(AuthStatus.BLOCKED, account_id=master.id,
                            reason="master-pass-cannot-start", final=True)
    return AuthDecision(AuthStatus.ACCEPTED, account_id=master.id,
                        expires_at=payer.decision.valid_until, reason="master-pass")
