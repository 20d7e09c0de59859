"""The authorisation decision, its OCPP forms (checked against the ocpp package's own schemas)
and the clone detector."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import ocpp
import pytest

from rfid.authorisation import (
    AuthStatus,
    BadgeState,
    BadgeUse,
    CloneDetector,
    CreditAnswer,
    Decision,
    decide,
    find_clone,
    group_token,
    id_tag_info,
    id_token_info,
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


def _validate(schema_file: Path, payload: dict[str, object]) -> None:
    jsonschema.validate(payload, json.loads(schema_file.read_text()))


def test_v16_id_tag_info_exact_wire_form() -> None:
    accepted = decide(badge(valid_until=date(2026, 12, 31)), now=NOW, tz=BERLIN)
    info = id_tag_info(accepted, cache_until=NOW + timedelta(days=1))
    assert info == {"status": "Accepted", "expiryDate": "2026-03-15T18:30:00Z",
                    "parentIdTag": "a-01"}
    # the badge's validity ends before the cache would: midnight Berlin = 23:00 UTC
    info = id_tag_info(accepted, cache_until=NOW + timedelta(days=365))
    assert info["expiryDate"] == "2026-12-31T23:00:00Z"
    _validate(SCHEMAS / "v16/schemas/AuthorizeResponse.json", {"idTagInfo": info})


@pytest.mark.parametrize(("decision", "v16", "v201"), [
    (Decision(AuthStatus.NO_CREDIT, "no-credit", "", "a-01"), "Blocked", "NoCredit"),
    (Decision(AuthStatus.CONCURRENT_TX, "concurrent-session", "", "a-01"),
     "ConcurrentTx", "ConcurrentTx"),
    (Decision(AuthStatus.EXPIRED, "badge-expired", "", "a-01"), "Expired", "Expired"),
    (Decision(AuthStatus.BLOCKED, "badge-lost", "", "a-01"), "Blocked", "Blocked"),
    (Decision(AuthStatus.INVALID, "unknown-badge", ""), "Invalid", "Invalid"),
])
def test_status_names_per_version(decision: Decision, v16: str, v201: str) -> None:
    old = id_tag_info(decision, cache_until=NOW)
    new = id_token_info(decision, language="en", tariff="Wallbox 2026", cache_until=NOW)
    assert old["status"] == v16
    assert new["status"] == v201
    assert "expiryDate" not in old and "cacheExpiryDateTime" not in new
    _validate(SCHEMAS / "v16/schemas/AuthorizeResponse.json", {"idTagInfo": old})
    _validate(SCHEMAS / "v201/schemas/AuthorizeResponse.json", {"idTokenInfo": new})


def test_v201_id_token_info_exact_wire_form() -> None:
    accepted = decide(badge(), now=NOW, tz=BERLIN, credit=CreditAnswer(True))
    info = id_token_info(accepted, language="de", tariff="Wallbox 2026",
                         cache_until=NOW + timedelta(hours=12))
    assert info == {
        "status": "Accepted",
        "cacheExpiryDateTime": "2026-03-15T06:30:00Z",
        "groupIdToken": {"idToken": "a-01", "type": "Central"},
        "language1": "de",
        "personalMessage": {"format": "UTF8", "language": "de",
                            "content": "Willkommen. Tarif: Wallbox 2026"},
    }
    _validate(SCHEMAS / "v201/schemas/AuthorizeResponse.json", {"idTokenInfo": info})
    english = id_token_info(accepted, language="en", tariff="Laundry")
    assert english["personalMessage"]["content"] == "Welcome. Tariff: Laundry"
    assert "cacheExpiryDateTime" not in english
    refused = id_token_info(decide(badge("lost"), now=NOW, tz=BERLIN), language="fr", tariff="x")
    assert refused["personalMessage"] == {
        "format": "UTF8", "language": "de",
        "content": "Dieser Badge wurde als verloren gemeldet.",
    }


def test_long_account_ids_fit_the_ocpp_fields() -> None:
    long_id = "hausverwaltung-lindenhof-wohnung-a-01-familie-keller"
    token = group_token(long_id, 20)
    assert len(token) == 20 and token.startswith("~") and token == group_token(long_id, 20)
    assert group_token(long_id + "x", 20) != token
    decision = decide(BadgeState("04A2B3C4", long_id, "active"), now=NOW, tz=BERLIN)
    _validate(SCHEMAS / "v16/schemas/AuthorizeResponse.json",
              {"idTagInfo": id_tag_info(decision)})
    _validate(SCHEMAS / "v201/schemas/AuthorizeResponse.json",
              {"idTokenInfo": id_token_info(decision, language="de", tariff="t")})


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
