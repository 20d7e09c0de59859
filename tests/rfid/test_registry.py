"""The badge registry on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from rfid.models import Badge, BadgeChange
from rfid.registry import (
    BadgeNotFound,
    RegistryError,
    block_badge,
    get_badge,
    list_badges,
    list_version,
    lookup,
    register_badge,
    unblock_badge,
    update_badge,
)
from rfid.uid import UidError
from tests.rfid.conftest import NOW


async def test_register_in_any_lossless_format(session: AsyncSession) -> None:
    a = await register_badge(session, uid="04:a2:b3:c4", account_id="a-01", now=NOW,
                             label=" Keller 1 ")
    b = await register_badge(session, uid="36130104729571588", fmt="dec-reversed",
                             account_id="a-01", now=NOW, origin="foreign",
                             card_type="MIFARE Classic 1K")
    await session.commit()
    assert (a.uid, a.label, a.status, a.origin) == ("04A2B3C4", "Keller 1", "active", "issued")
    assert (b.uid, b.origin) == ("04911A8A235C80", "foreign")
    assert [x.uid for x in await list_badges(session, account_id="a-01")] == [
        "04911A8A235C80", "04A2B3C4"]
    badge = await get_badge(session, "lindenhof", "04 91 1a 8a 23 5c 80")
    assert badge.card_type == "MIFARE Classic 1K"


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"uid": "04A2B3"}, "uid", "3 bytes"),
    ({"uid": "04A2X3C4"}, "uid", "'X' (digit 5) is not a hex digit"),
    ({"uid": "04A2B3C4", "fmt": "octal"}, "format", "unknown idTag format 'octal'"),
    ({"uid": "179,41476", "fmt": "wiegand26"}, "uid", "reveals only 3 bytes"),
    ({"uid": "8804911A"}, "uid", "cascade tag 88"),
    ({"uid": "08A2B3C4"}, "uid", "random UID"),
    ({"uid": "04A2B3C4", "account_id": "nobody"}, "account_id", "unknown account 'nobody'"),
    ({"uid": "04A2B3C4", "origin": "stolen"}, "origin", "'stolen' is not one of"),
    ({"uid": "04A2B3C4", "max_sessions": 0}, "max_sessions", "below 1"),
    ({"uid": "04A2B3C4", "label": "x" * 81}, "label", "81 characters"),
    ({"uid": "04A2B3C4", "valid_from": date(2026, 5, 1), "valid_until": date(2026, 4, 1)},
     "valid_until", "2026-04-01 is before valid_from 2026-05-01"),
])
async def test_bad_input_names_the_field_and_stores_nothing(
    session: AsyncSession, kwargs: dict[str, object], field: str, message: str
) -> None:
    arguments: dict[str, object] = {"account_id": "a-01", "now": NOW} | kwargs
    with pytest.raises(RegistryError, match=re.escape(message)) as caught:
        await register_badge(session, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    await session.rollback()
    assert (await session.exec(select(Badge))).all() == []
    assert (await session.exec(select(BadgeChange))).all() == []
    assert await list_version(session, "lindenhof") == 0


async def test_duplicate_uid_is_refused_on_its_site_only(session: AsyncSession) -> None:
    await register_badge(session, uid="04A2B3C4", account_id="a-01", now=NOW)
    await session.commit()
    with pytest.raises(RegistryError, match=r"already registered on this site$") as caught:
        await register_badge(session, uid="c4b3a204", fmt="hex-reversed",
                             account_id="a-02-en", now=NOW)
    assert "a-01" not in str(caught.value)  # names no account, not even its own site's
    await session.rollback()
    # 4-byte UIDs are not unique worldwide: another site may have a badge with the same UID
    other = await register_badge(session, uid="c4b3a204", fmt="hex-reversed",
                                 account_id="s-01", now=NOW)
    await session.commit()
    assert (other.site_id, other.uid, other.account_id) == ("seeblick", "04A2B3C4", "s-01")
    assert (await get_badge(session, "lindenhof", "04A2B3C4")).account_id == "a-01"
    assert (await get_badge(session, "seeblick", "04A2B3C4")).account_id == "s-01"


async def test_block_unblock_and_versions(session: AsyncSession) -> None:
    await register_badge(session, uid="04A2B3C4", account_id="a-01", now=NOW)
    await register_badge(session, uid="F1E2D3C4", account_id="s-01", now=NOW)
    await session.commit()
    assert await list_version(session, "lindenhof") == 1
    assert await list_version(session, "seeblick") == 1
    badge = await block_badge(session, "lindenhof", "04a2b3c4", now=NOW, lost=True)
    assert badge.status == "lost"
    assert await list_version(session, "lindenhof") == 2
    # no change, no new version
    await block_badge(session, "lindenhof", "04A2B3C4", now=NOW, lost=True)
    assert await list_version(session, "lindenhof") == 2
    assert (await unblock_badge(session, "lindenhof", "04A2B3C4", now=NOW)).status == "active"
    await session.commit()
    assert await list_version(session, "lindenhof") == 3
    assert await list_version(session, "seeblick") == 1
    with pytest.raises(BadgeNotFound, match="no badge DEADBEEF"):
        await block_badge(session, "lindenhof", "DEADBEEF", now=NOW)
    # another site's badge is not found through this site
    with pytest.raises(BadgeNotFound, match="no badge F1E2D3C4 is registered on this site"):
        await block_badge(session, "lindenhof", "F1E2D3C4", now=NOW)


async def test_moving_a_badge_logs_both_sites(session: AsyncSession) -> None:
    await register_badge(session, uid="04A2B3C4", account_id="a-01", now=NOW)
    await update_badge(session, "lindenhof", "04A2B3C4", account_id="s-01", now=NOW,
                       valid_until=date(2026, 12, 31))
    await session.commit()
    changes = (await session.exec(select(BadgeChange).order_by(BadgeChange.id))).all()
    assert [(c.site_id, c.version) for c in changes] == [
        ("lindenhof", 1), ("lindenhof", 2), ("seeblick", 1)]
    assert [b.uid for b in await list_badges(session, site_id="seeblick")] == ["04A2B3C4"]
    assert await list_badges(session, site_id="lindenhof") == []


async def test_lookup_with_format_fallback_and_site_scope(session: AsyncSession) -> None:
    await register_badge(session, uid="04A2B3C4", account_id="a-01", now=NOW)
    await register_badge(session, uid="04911A8A235C80", account_id="a-02-en", now=NOW)
    await register_badge(session, uid="F1E2D3C4", account_id="s-01", now=NOW)
    await session.commit()

    found = await lookup(session, "04A2B3C4", "hex", site_id="lindenhof")
    assert found is not None and found.badge.account_id == "a-01"
    assert not found.match.format_mismatch

    # a station set to hex whose reader sends the 10-digit decimal
    found = await lookup(session, "3300106756", "hex", site_id="lindenhof")
    assert found is not None and found.badge.uid == "04A2B3C4"
    assert (found.match.fmt, found.match.configured) == ("dec-reversed", "hex")

    # truncated to the first 4 bytes, and cascade level 1 as on the air
    for tag in ("04911a8a", "8804911A"):
        found = await lookup(session, tag, "hex", site_id="lindenhof")
        assert found is not None and found.badge.uid == "04911A8A235C80"
        assert found.match.kind == "prefix"

    found = await lookup(session, "179,41476", "wiegand26", site_id="lindenhof")
    assert found is not None and found.badge.uid == "04A2B3C4"

    assert await lookup(session, "F1E2D3C4", "hex", site_id="lindenhof") is None
    assert await lookup(session, "F1E2D3C4", "hex", site_id="seeblick") is not None
    assert await lookup(session, "not a tag", "hex", site_id="lindenhof") is None
    with pytest.raises(UidError, match="unknown idTag format"):
        await lookup(session, "04A2B3C4", "HEX", site_id="lindenhof")
