"""The OCPP forms of an authorisation decision, built only by the version adapters: 1.6
`IdTagInfo`, 2.0.1 `IdTokenInfo`, exact on the wire and valid against the ocpp package's own
schemas, for answers and for local-list entries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import ocpp
import pytest

from csms.ocpp import v16, v201
from csms.ocpp.events import AuthDecision, AuthStatus
from rfid.authorisation import BadgeState, CreditAnswer, decide, personal_message

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 14, 18, 30, tzinfo=UTC)  # 19:30 in Berlin
SCHEMAS = Path(ocpp.__file__).parent


def _validate(schema_file: Path, payload: dict[str, object]) -> None:
    jsonschema.validate(payload, json.loads(schema_file.read_text()))


def badge(status: str = "active", account: str = "a-01", **dates: date) -> BadgeState:
    return BadgeState("04A2B3C4", account, status, dates.get("valid_from"),
                      dates.get("valid_until"))


def test_v16_list_entry_exact_wire_form() -> None:
    accepted = decide(badge(valid_until=date(2026, 12, 31)), now=NOW, tz=BERLIN)
    info = v16.id_tag_info(AuthDecision.for_list(accepted))
    # the badge works through its last day: midnight Berlin = 23:00 UTC
    assert info == {"status": "Accepted", "expiryDate": "2026-12-31T23:00:00.000Z",
                    "parentIdTag": "a-01"}
    _validate(SCHEMAS / "v16/schemas/AuthorizeResponse.json", {"idTagInfo": info})
    lost = v16.id_tag_info(AuthDecision.for_list(
        decide(badge("lost", valid_until=date(2026, 12, 31)), now=NOW, tz=BERLIN)))
    assert lost == {"status": "Blocked", "parentIdTag": "a-01"}


@pytest.mark.parametrize(("status", "old", "new"), [
    (AuthStatus.NO_CREDIT, "Blocked", "NoCredit"),
    (AuthStatus.CONCURRENT_TX, "ConcurrentTx", "ConcurrentTx"),
    (AuthStatus.EXPIRED, "Expired", "Expired"),
    (AuthStatus.BLOCKED, "Blocked", "Blocked"),
    (AuthStatus.INVALID, "Invalid", "Invalid"),
])
def test_status_names_per_version(status: AuthStatus, old: str, new: str) -> None:
    decision = AuthDecision(status, account_id="a-01")
    v16_info, v201_info = v16.id_tag_info(decision), v201.id_token_info(decision)
    # The household is the badge's group in every answer, as in the local list (issue 14).
    assert v16_info == {"status": old, "parentIdTag": "a-01"}
    assert v201_info == {"status": new, "groupIdToken": {"idToken": "a-01", "type": "Central"}}
    _validate(SCHEMAS / "v16/schemas/AuthorizeResponse.json", {"idTagInfo": v16_info})
    _validate(SCHEMAS / "v201/schemas/AuthorizeResponse.json", {"idTokenInfo": v201_info})


def test_v201_answer_exact_wire_form() -> None:
    accepted = decide(badge(valid_until=date(2026, 12, 31)), now=NOW, tz=BERLIN,
                      credit=CreditAnswer(True))
    decision = AuthDecision(
        accepted.status, account_id="a-01", expires_at=accepted.valid_until,
        group_id="a-01", language="de",
        personal_message=personal_message(accepted, language="de", tariff="Wallbox 2026"),
    )
    info = v201.id_token_info(decision)
    assert info == {
        "status": "Accepted",
        "cacheExpiryDateTime": "2026-12-31T23:00:00.000Z",
        "groupIdToken": {"idToken": "a-01", "type": "Central"},
        "language1": "de",
        "personalMessage": {"format": "UTF8", "language": "de",
                            "content": "Willkommen. Tarif: Wallbox 2026"},
    }
    _validate(SCHEMAS / "v201/schemas/AuthorizeResponse.json", {"idTokenInfo": info})


def test_long_account_ids_fit_the_ocpp_fields() -> None:
    long_id = "hausverwaltung-lindenhof-wohnung-a-01-familie-keller"
    decision = decide(badge(account=long_id), now=NOW, tz=BERLIN)
    old = v16.id_tag_info(AuthDecision.for_list(decision))
    new = v201.id_token_info(AuthDecision.for_list(decision))
    assert len(old["parentIdTag"]) == 20 and len(new["groupIdToken"]["idToken"]) == 36
    _validate(SCHEMAS / "v16/schemas/AuthorizeResponse.json", {"idTagInfo": old})
    _validate(SCHEMAS / "v201/schemas/AuthorizeResponse.json", {"idTokenInfo": new})
