"""Who pays for a badge shown at a device: the badge found on the device's site in the device's
idTag format, rfid's decision over it, the wallet's credit answer, the concurrent-use limit
counted across every kind of device, and the clone check.

`who_pays` reads; it changes nothing. The flow opens the hold when a use really starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.device import DeviceRef
from billing.models import PaidUse, UseStatus
from rfid.authorisation import (
    AuthStatus,
    BadgeUse,
    CloneAlert,
    CloneDetector,
    CreditAnswer,
    Decision,
    decide,
)
from rfid.models import Badge
from rfid.registry import Lookup, badge_state, lookup
from rfid.uid import UidError
from wallet.credit import Mode
from wallet.models import Account
from wallet.service import credit_decision, get_policy, raise_alert

log = structlog.get_logger("billing.payer")

CLONE_ALERT = "badge_clone_suspected"


@dataclass(frozen=True, slots=True)
class Payer:
    """rfid's decision for the badge, and whose account it names (also when refused)."""

    decision: Decision
    badge: Badge | None
    # The household's language where `who_pays` looked it up; `badge_standing` leaves "de".
    language: str = "de"

    @property
    def account_id(self) -> str | None:
        return self.badge.account_id if self.badge is not None else None


async def device_badge(db: AsyncSession, device: DeviceRef, id_tag: str) -> Lookup | None:
    """The badge behind an idTag as `device` sent it (its format, with rfid's fallbacks), on
    the device's site only; a match through another format is logged, as the device is
    misconfigured."""
    try:
        found = await lookup(db, id_tag, device.idtag_format, site_id=device.site_id)
    except (UidError, ValueError):
        return None
    if found is not None and found.match.format_mismatch:
        log.warning(
            "billing.idtag_format_mismatch",
            device_id=device.device_id,
            configured=device.idtag_format,
            matched=found.match.fmt,
        )
    return found


async def open_uses(db: AsyncSession, site_id: str, badge_uid: str) -> int:
    """Uses the badge runs right now on its site, on every kind of device."""
    count = (
        await db.exec(
            select(func.count())
            .select_from(PaidUse)
            .where(col(PaidUse.site_id) == site_id)
            .where(col(PaidUse.badge_uid) == badge_uid)
            .where(col(PaidUse.status) == UseStatus.ACTIVE)
        )
    ).one()
    return int(count)


async def account_language(db: AsyncSession, account_id: str | None) -> str:
    account = await db.get(Account, account_id) if account_id else None
    return account.language if account is not None else "de"


async def badge_standing(
    db: AsyncSession, device: DeviceRef, id_tag: str, now: datetime
) -> Payer:
    """The badge's own standing (status, validity), no account, limit or wallet: what decides
    whether a use that already started is billed to the badge's account as accepted."""
    found = await device_badge(db, device, id_tag)
    zone = ZoneInfo(device.timezone)
    if found is None:
        return Payer(decide(None, now=now, tz=zone), None)
    badge = found.badge
    # No language: nobody asking for the badge's standing words an answer (a station's
    # Authorize, a use billed after the fact), and it would be one more read per badge shown.
    return Payer(decide(badge_state(badge), now=now, tz=zone), badge)


async def who_pays(
    db: AsyncSession, device: DeviceRef, id_tag: str, now: datetime, *, ask_credit: bool = True
) -> Payer:
    """The one decision for a badge at a device: badge standing, then account mode, the
    concurrent-use limit and (when `ask_credit`) the wallet's credit answer."""
    found = await device_badge(db, device, id_tag)
    if found is None:
        return Payer(decide(None, now=now, tz=ZoneInfo(device.timezone)), None)
    badge = found.badge
    policy = await get_policy(db, badge.account_id)
    credit = None
    if ask_credit:
        answer = await credit_decision(db, badge.account_id, now)
        credit = CreditAnswer(answer.may_start, answer.reason.value)
    decision = decide(
        badge_state(badge),
        now=now,
        tz=ZoneInfo(device.timezone),
        account_active=policy.mode is not Mode.BLOCKED,
        open_sessions=await open_uses(db, device.site_id, badge.uid),
        max_sessions=max(badge.max_sessions, device.max_uses_per_badge),
        credit=credit,
    )
    return Payer(decision, badge, await account_language(db, badge.account_id))


class CloneCheck:
    """The rfid clone detector fed with every badge use the flow sees; a suspected clone is a
    staff alert on the badge's account (once per pair of uses)."""

    def __init__(self, window: timedelta = timedelta(minutes=10)) -> None:
        self.window = window
        self.detector = CloneDetector(window)
        # (uid, one location, the other) -> when it was alerted: an Authorize and the start
        # that follows it are one suspicion, not two.
        self._alerted: dict[tuple[str, str, str], datetime] = {}

    async def observe(
        self, db: AsyncSession, device: DeviceRef, badge: Badge, now: datetime
    ) -> CloneAlert | None:
        use = BadgeUse(badge.uid, device.location or device.site_id, device.device_id, now)
        alert = self.detector.observe(use)
        if alert is None:
            return None
        pair = (badge.uid, *sorted((alert.first.location, alert.second.location)))
        assert len(pair) == 3
        before = self._alerted.get(pair)
        if before is not None and now - before < self.window:
            return None
        self._alerted = {k: at for k, at in self._alerted.items() if now - at < self.window}
        self._alerted[pair] = now
        log.warning("billing.clone_suspected", uid=badge.uid, account_id=badge.account_id,
                    message=alert.message)
        await raise_alert(
            db, account_id=badge.account_id, kind=CLONE_ALERT, at=now, audience="staff",
            payload={"uid": badge.uid, "message": alert.message,
                     "first_point": alert.first.point, "second_point": alert.second.point,
                     "gap_s": int(abs((alert.second.at - alert.first.at).total_seconds())),
                     "first_at": alert.first.at.isoformat(),
                     "second_at": alert.second.at.isoformat()},
        )
        return alert


def no_tariff_decision(device: DeviceRef, payer: Payer) -> Decision:
    """A device without a tariff cannot bill, so no use starts there, whoever pays."""
    return Decision(
        AuthStatus.INVALID, "device-no-tariff",
        f"{device.kind} device {device.device_id} has no tariff: it bills nothing until an "
        "installer approves it with one",
        payer.account_id,
    )
