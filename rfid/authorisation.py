"""Who may start: one pure decision from badge and account state and the wallet's answer, the
texts a display shows for it, and the clone detector. Its OCPP forms (1.6 `IdTagInfo`, 2.0.1
`IdTokenInfo`) are built by the OCPP version adapters in `csms.ocpp`.

Nothing here reads a clock or a database: the caller passes `now` (aware), the site's time zone,
the number of sessions the badge already runs and the wallet's credit answer (rfid does not
import wallet).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Final


class AuthStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    NO_CREDIT = "NoCredit"
    CONCURRENT_TX = "ConcurrentTx"
    # A valid badge kept off a reserved connector until the reservation ends (OCPP 2.0.1's
    # status for "valid, but not now"; a 1.6 station is told Blocked).
    NOT_AT_THIS_TIME = "NotAtThisTime"


BADGE_STATUSES: Final = ("active", "blocked", "lost", "expired")


@dataclass(frozen=True, slots=True)
class BadgeState:
    uid: str
    account_id: str
    status: str  # active | blocked | lost | expired
    valid_from: date | None = None
    valid_until: date | None = None  # inclusive: the badge works through this day (site time)


@dataclass(frozen=True, slots=True)
class CreditAnswer:
    """The wallet's answer to "may this account start now?"."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    status: AuthStatus
    reason: str  # a short code: accepted, unknown-badge, badge-blocked, badge-lost, ...
    detail: str  # a sentence for logs and the owner's view
    account_id: str | None = None
    valid_until: datetime | None = None  # end of the badge's validity (UTC), if it has one

    @property
    def accepted(self) -> bool:
        return self.status is AuthStatus.ACCEPTED


def validity_end(valid_until: date | None, tz: tzinfo) -> datetime | None:
    """Midnight after the last valid day, in the site's zone, as UTC."""
    if valid_until is None:
        return None
    return datetime.combine(valid_until + timedelta(days=1), time(0), tz).astimezone(UTC)


def badge_status(badge: BadgeState, today: date) -> tuple[AuthStatus, str, str]:
    """The badge's own standing on `today` (site date): status, reason code, detail."""
    if badge.status == "blocked":
        return AuthStatus.BLOCKED, "badge-blocked", f"badge {badge.uid} is blocked"
    if badge.status == "lost":
        return AuthStatus.BLOCKED, "badge-lost", f"badge {badge.uid} was reported lost"
    if badge.status == "expired":
        return AuthStatus.EXPIRED, "badge-expired", f"badge {badge.uid} has expired"
    if badge.status != "active":
        return AuthStatus.INVALID, "badge-status", f"badge {badge.uid} has status {badge.status!r}"
    if badge.valid_until is not None and today > badge.valid_until:
        return (AuthStatus.EXPIRED, "badge-expired",
                f"badge {badge.uid} was valid until {badge.valid_until.isoformat()}")
    if badge.valid_from is not None and today < badge.valid_from:
        return (AuthStatus.INVALID, "badge-not-yet-valid",
                f"badge {badge.uid} is valid from {badge.valid_from.isoformat()}")
    return AuthStatus.ACCEPTED, "accepted", f"badge {badge.uid} accepted"


def decide(
    badge: BadgeState | None,
    *,
    now: datetime,
    tz: tzinfo,
    account_active: bool = True,
    open_sessions: int = 0,
    max_sessions: int = 1,
    credit: CreditAnswer | None = None,
) -> Decision:
    """The one authorisation decision.

    `badge` None means no registered badge matched the idTag. `open_sessions` is how many
    sessions the badge runs right now, `max_sessions` how many the owner allows at once.
    `credit` None means credit is not asked (an Authorize to stop, or a cache refresh); a start
    passes the wallet's answer. The checks run from the card outwards: a blocked card is
    reported as blocked even when the wallet is empty.
    """
    if badge is None:
        return Decision(AuthStatus.INVALID, "unknown-badge", "no badge registered for this idTag")
    end = validity_end(badge.valid_until, tz)
    status, reason, detail = badge_status(badge, now.astimezone(tz).date())
    if status is not AuthStatus.ACCEPTED:
        return Decision(status, reason, detail, badge.account_id, end)
    if not account_active:
        return Decision(AuthStatus.BLOCKED, "account-inactive",
                        f"account {badge.account_id} is not active", badge.account_id, end)
    if open_sessions >= max_sessions:
        return Decision(
            AuthStatus.CONCURRENT_TX, "concurrent-session",
            f"badge {badge.uid} already runs {open_sessions} session(s); {max_sessions} allowed",
            badge.account_id, end,
        )
    if credit is not None and not credit.ok:
        return Decision(AuthStatus.NO_CREDIT, "no-credit",
                        credit.reason or f"account {badge.account_id} has no credit",
                        badge.account_id, end)
    return Decision(AuthStatus.ACCEPTED, reason, detail, badge.account_id, end)


def group_token(account_id: str, max_length: int) -> str:
    """The account id as an OCPP group token; a digest when it is too long for the field.

    1.6 `parentIdTag` holds 20 characters and 2.0.1 `idToken` 36, account ids up to 64: a long id
    becomes `~` and the start of its SHA-256, stable so that stations group by it consistently.
    """
    if len(account_id) <= max_length:
        return account_id
    return "~" + hashlib.sha256(account_id.encode()).hexdigest()[: max_length - 1]


_MESSAGES: Final[dict[str, dict[str, str]]] = {
    "de": {
        "accepted": "Willkommen. Tarif: {tariff}",
        "unknown-badge": "Unbekannter Badge.",
        "badge-blocked": "Dieser Badge ist gesperrt.",
        "badge-lost": "Dieser Badge wurde als verloren gemeldet.",
        "badge-expired": "Dieser Badge ist abgelaufen.",
        "badge-not-yet-valid": "Dieser Badge ist noch nicht gültig.",
        "badge-status": "Dieser Badge ist nicht aktiv.",
        "account-inactive": "Das Konto ist nicht aktiv.",
        "concurrent-session": "Mit diesem Badge läuft bereits ein Vorgang.",
        "no-credit": "Kein ausreichendes Guthaben. Tarif: {tariff}",
        "device-no-tariff": "Dieses Gerät ist noch nicht freigegeben.",
    },
    "en": {
        "accepted": "Welcome. Tariff: {tariff}",
        "unknown-badge": "Unknown badge.",
        "badge-blocked": "This badge is blocked.",
        "badge-lost": "This badge was reported lost.",
        "badge-expired": "This badge has expired.",
        "badge-not-yet-valid": "This badge is not valid yet.",
        "badge-status": "This badge is not active.",
        "account-inactive": "The account is not active.",
        "concurrent-session": "This badge is already in use.",
        "no-credit": "Not enough credit. Tariff: {tariff}",
        "device-no-tariff": "This device is not in service yet.",
    },
}


def personal_message(decision: Decision, *, language: str, tariff: str) -> str:
    texts = _MESSAGES.get(language, _MESSAGES["de"])
    return texts.get(decision.reason, texts["badge-status"]).format(tariff=tariff)[:512]


@dataclass(frozen=True, slots=True)
class BadgeUse:
    uid: str
    location: str  # what counts as one place: a site, or a building (the caller decides)
    point: str  # the station or reader, for the alert text
    at: datetime


@dataclass(frozen=True, slots=True)
class CloneAlert:
    uid: str
    first: BadgeUse
    second: BadgeUse

    @property
    def message(self) -> str:
        gap = int(abs((self.second.at - self.first.at).total_seconds()))
        return (
            f"badge {self.uid} used at {self.first.point} ({self.first.location}) and "
            f"{self.second.point} ({self.second.location}) {gap} s apart: possible clone"
        )


def find_clone(
    recent: Iterable[BadgeUse], use: BadgeUse, window: timedelta
) -> CloneAlert | None:
    """The earliest recent use of the same UID at another location within `window` of `use`."""
    for earlier in sorted(recent, key=lambda u: u.at):
        if (
            earlier.uid == use.uid
            and earlier.location != use.location
            and abs(use.at - earlier.at) <= window
        ):
            return CloneAlert(use.uid, earlier, use)
    return None


class CloneDetector:
    """Remembers uses for `window` and reports a clone alert on a use that completes one.

    In-memory per process: uses a node does not see (another node on the bus) are not compared,
    so the OCPP layer feeds it from the bus's badge-use events where it runs several nodes.
    """

    def __init__(self, window: timedelta = timedelta(minutes=10)) -> None:
        self.window = window
        self._uses: dict[str, deque[BadgeUse]] = {}

    def observe(self, use: BadgeUse) -> CloneAlert | None:
        self._forget_before(use.at - self.window)
        recent = self._uses.setdefault(use.uid, deque())
        alert = find_clone(recent, use, self.window)
        recent.append(use)
        return alert

    def _forget_before(self, cutoff: datetime) -> None:
        for uid in list(self._uses):
            uses = self._uses[uid]
            while uses and uses[0].at < cutoff:
                uses.popleft()
            if not uses:
                del self._uses[uid]
