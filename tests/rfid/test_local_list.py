"""Local authorisation lists: full and differential, versioned per site, on both databases;
payloads checked against the ocpp package's SendLocalList schemas."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import ocpp
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.ocpp import v16, v201
from rfid.local_list import LocalListUpdate, full_list, update_since
from rfid.registry import block_badge, list_version, register_badge, update_badge
from tests.rfid.conftest import NOW

BERLIN = ZoneInfo("Europe/Berlin")
SCHEMAS = Path(ocpp.__file__).parent


def check_wire(update: LocalListUpdate) -> tuple[dict[str, Any], dict[str, Any]]:
    old, new = v16.send_local_list_request(update), v201.send_local_list_request(update)
    jsonschema.validate(old, json.loads((SCHEMAS / "v16/schemas/SendLocalList.json").read_text()))
    jsonschema.validate(
        new, json.loads((SCHEMAS / "v201/schemas/SendLocalListRequest.json").read_text())
    )
    return old, new


async def test_full_then_differential_updates(session: AsyncSession) -> None:
    await register_badge(session, uid="04A2B3C4", account_id="a-01", now=NOW,
                         valid_until=date(2026, 12, 31))
    await register_badge(session, uid="04911A8A235C80", account_id="a-02-en", now=NOW,
                         valid_from=date(2026, 4, 1))
    await register_badge(session, uid="F1E2D3C4", account_id="s-01", now=NOW)
    await session.commit()

    full = await full_list(session, "lindenhof", "dec-reversed", now=NOW, tz=BERLIN)
    await session.commit()
    assert (full.version, full.update_type) == (2, "Full")
    old, new = check_wire(full)
    assert old == {"listVersion": 2, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "36130104729571588", "idTagInfo": {"status": "Invalid",
                                                     "parentIdTag": "a-02-en"}},
        {"idTag": "3300106756", "idTagInfo": {"status": "Accepted",
                                              "expiryDate": "2026-12-31T23:00:00.000Z",
                                              "parentIdTag": "a-01"}},
    ]}
    assert new["localAuthorizationList"][1] == {
        "idToken": {"idToken": "3300106756", "type": "ISO14443"},
        "idTokenInfo": {"status": "Accepted", "cacheExpiryDateTime": "2026-12-31T23:00:00.000Z",
                        "groupIdToken": {"idToken": "a-01", "type": "Central"}},
    }

    current = await update_since(session, "lindenhof", "hex", 2, now=NOW, tz=BERLIN)
    assert (current.update_type, current.entries) == ("Differential", ())
    assert "localAuthorizationList" not in check_wire(current)[1]

    # a lost badge is refused everywhere: listed as Blocked, not merely dropped
    await block_badge(session, "lindenhof", "04A2B3C4", now=NOW, lost=True)
    await session.commit()
    diff = await update_since(session, "lindenhof", "hex", 2, now=NOW, tz=BERLIN)
    assert diff.version == 3
    old, _ = check_wire(diff)
    assert old["localAuthorizationList"] == [
        {"idTag": "04A2B3C4", "idTagInfo": {"status": "Blocked", "parentIdTag": "a-01"}}]

    # a badge that moves to another site is removed from this site's stations
    await update_badge(session, "lindenhof", "04911A8A235C80", account_id="s-01", now=NOW)
    await session.commit()
    diff = await update_since(session, "lindenhof", "hex", 3, now=NOW, tz=BERLIN)
    old, new = check_wire(diff)
    assert old == {"listVersion": 4, "updateType": "Differential",
                   "localAuthorizationList": [{"idTag": "04911A8A235C80"}]}
    assert new["localAuthorizationList"] == [
        {"idToken": {"idToken": "04911A8A235C80", "type": "ISO14443"}}]
    # a station two versions behind gets both changes
    diff = await update_since(session, "lindenhof", "hex", 2, now=NOW, tz=BERLIN)
    assert [e.uid for e in diff.entries] == ["04911A8A235C80", "04A2B3C4"]

    # unknown or missing versions get the full list
    assert (await update_since(session, "lindenhof", "hex", 99, now=NOW, tz=BERLIN)
            ).update_type == "Full"
    assert (await update_since(session, "lindenhof", "hex", 0, now=NOW, tz=BERLIN)
            ).update_type == "Full"


async def test_the_calendar_alone_bumps_the_version(session: AsyncSession) -> None:
    await register_badge(session, uid="04A2B3C4", account_id="s-01", now=NOW,
                         valid_from=date(2026, 4, 1))
    await session.commit()
    first = await full_list(session, "seeblick", "hex", now=NOW, tz=BERLIN)
    await session.commit()
    assert first.entries[0].decision is not None
    assert first.entries[0].decision.status.value == "Invalid"
    assert await list_version(session, "seeblick") == 1
    # nothing changes within the same day
    await update_since(session, "seeblick", "hex", 1, now=NOW, tz=BERLIN)
    assert await list_version(session, "seeblick") == 1
    april = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # midnight in Berlin
    diff = await update_since(session, "seeblick", "hex", 1, now=april, tz=BERLIN)
    await session.commit()
    assert diff.version == 2
    assert [(e.id_tag, e.decision.status.value if e.decision else None)
            for e in diff.entries] == [("04A2B3C4", "Accepted")]


async def test_long_idtags_are_skipped_for_ocpp16(session: AsyncSession) -> None:
    await register_badge(session, uid="04112233445566778899", account_id="a-01", now=NOW)
    await register_badge(session, uid="04A2B3C4", account_id="a-01", now=NOW)
    await session.commit()
    old = await full_list(session, "lindenhof", "dec", now=NOW, tz=BERLIN)
    assert [e.uid for e in old.entries] == ["04A2B3C4"]
    assert old.skipped == ("04112233445566778899",)
    new = await full_list(session, "lindenhof", "dec", now=NOW, tz=BERLIN,
                          protocol="ocpp2.0.1")
    assert len(new.entries) == 2 and new.skipped == ()
    jsonschema.validate(v201.send_local_list_request(new), json.loads(
        (SCHEMAS / "v201/schemas/SendLocalListRequest.json").read_text()))
    check_wire(old)
