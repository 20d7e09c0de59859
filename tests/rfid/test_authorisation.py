"""The authorisation decision, its display texts, group tokens and the clone detector (its OCPP
forms are tested with the version adapters, tests/csms/ocpp/test_ocpp_auth_info.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import ocpp
import pytest

from rfid.authorisation import (
    AuthStatus,
    BadgeState,
    BadgeUse,
    CloneDetector,
    CreditAnswer,
    decide,
    find_clone,
    group_token,
    personal_message,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 14, 18, 30, tzinfo=UTC)  # 19:30 in Berlin
SCHEMAS = Path(ocpp.__file__).parent


def badge(status: str = "active", **dates: date) -> BadgeState:
    return BadgeState("04A2B3C4", "a-01", status, dates.get("valid_from"), dates.get("valid_until"))


@pytest.mark.parametrize(("state", "kwargs", "status", "reason"), [
    (None, {}, AuthStatus.INVALID, "unknown-badge"),
    (badge(), {}, AuthStatus.ACCEPTED, "accepted"),
    (badge("blocked"), {}, AuthStatus.BLOCKED, "badge-blocked"),
    (badge("lost"), {}, AuthStatus.BLOCKED, "badge-lost"),
    (badge("expired"), {}, AuthStatus.EXPIRED, "badge-expired"),
    (badge("weird"), {}, AuthStatus.INVALID, "badge-status"),
    (badge(valid_until=date(2026, 3, 13)), {}, AuthStatus.EXPIRED, "badge-expired"),
    (badge(valid_until=date(2026, 3, 14)), {}, AuthStatus.ACCEPTED, "accepted"),
    (badge(valid_from=date(2026, 3, 15)), {}, AuthStatus.INVALID, "badge-not-yet-valid"),
    (badge(), {"account_active": False}, AuthStatus.BLOCKED, "account-inactive"),
    (badge(), {"open_sessions": 1}, AuthStatus.CONCURRENT_TX, "concurrent-session"),
    (badge(), {"open_sessions": 1, "max_sessions": 2}, AuthStatus.ACCEPTED, "accepted"),
    (badge(), {"credit": CreditAnswer(False, "balance 0.40 EUR below minimum 5.00 EUR")},
     AuthStatus.NO_CREDIT, "no-credit"),
    (badge(), {"credit": CreditAnswer(True)}, AuthStatus.ACCEPTED, "accepted"),
    # the card's own state is reported before the wallet's
    (badge("lost"), {"credit": CreditAnswer(False)}, AuthStatus.BLOCKED, "badge-lost"),
    (badge(), {"open_sessions": 1, "credit": CreditAnswer(False)},
     AuthStatus.CONCURRENT_TX, "concurrent-session"),
])
def test_decide(
    state: BadgeState | None, kwargs: dict[str, object], status: AuthStatus, reason: str
) -> None:
    decision = decide(state, now=NOW, tz=BERLIN, **kwargs)  # type: ignore[arg-type]
    assert (decision.status, decision.reason) == (status, reason)
    assert decision.account_id == (None if state is None else "a-01")


def test_validity_follows_the_site_date_not_utc() -> None:
    # 23:30 UTC on the 14th is already the 15th in Berlin: a badge valid until the 14th is over
    late = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)
    assert decide(badge(valid_until=date(2026, 3, 14)), now=late, tz=BERLIN).status \
        is AuthStatus.EXPIRED
    assert decide(badge(valid_until=date(2026, 3, 14)), now=late, tz=ZoneInfo("UTC")).accepted


def test_no_credit_reason_is_the_wallets() -> None:
    decision = decide(badge(), now=NOW, tz=BERLIN, credit=CreditAnswer(False, "balance -2.00"))
    assert decision.detail == "balance -2.00"


def test_display_texts_per_language() -> None:
    accepted = decide(badge(), now=NOW, tz=BERLIN, credit=CreditAnswer(True))
    assert personal_message(accepted, language="de", tariff="Wallbox 2026") == (
        "Willkommen. Tarif: Wallbox 2026")
    assert personal_message(accepted, language="en", tariff="Laundry") == (
        "Welcome. Tariff: Laundry")
    lost = decide(badge("lost"), now=NOW, tz=BERLIN)
    assert personal_message(lost, language="fr", tariff="x") == (
        "Dieser Badge wurde als verloren gemeldet.")


def test_long_account_ids_become_stable_group_tokens() -> None:
    long_id = "hausverwaltung-lindenhof-wohnung-a-01-familie-keller"
    token = group_token(long_id, 20)
    assert len(token) == 20 and token.startswith("~") and token == group_token(long_id, 20)
    assert group_token(long_id + "x", 20) != token
    assert group_token("a-01", 20) == "a-01"


def use(location: str, minute: int, uid: str = "04A2B3C4") -> BadgeUse:
    return BadgeUse(uid, location, f"WB-{location}", NOW + timedelta(minutes=minute))


def test_find_clone() -> None:
    window = timedelta(minutes=10)
    assert find_clone([use("lindenhof", 0)], use("lindenhof", 1), window) is None
    assert find_clone([use("lindenhof", 0)], use("seeblick", 11), window) is None
    assert find_clone([use("lindenhof", 0, "F1E2D3C4")], use("seeblick", 1), window) is None
    alert = find_clone([use("lindenhof", 0)], use("seeblick", 4), window)
    assert alert is not None
    assert alert.message == (
        "badge 04A2B3C4 used at WB-lindenhof (lindenhof) and WB-seeblick (seeblick) "
        "240 s apart: possible clone"
    )


def test_clone_detector_forgets_old_uses() -> None:
    detector = CloneDetector(timedelta(minutes=10))
    assert detector.observe(use("lindenhof", 0)) is None
    assert detector.observe(use("lindenhof", 2)) is None
    assert detector.observe(use("seeblick", 30)) is None  # long after: travelled, no clone
    alert = detector.observe(use("lindenhof", 35))
    assert alert is not None and alert.first.location == "seeblick"
