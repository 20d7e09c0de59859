"""Local authorisation lists: what a charger may accept while the central system is unreachable.

The list is per site (every station of a site accepts the same badges) and versioned by the
site's counter in `badge_list_version`, which `rfid.registry` bumps on every badge change; the
rendering is per station (its `idtag_format`). A station that reports list version `v` gets the
badges changed after `v` as a differential update; one with no list (0) or a version this site
never issued gets the full list.

Entries carry every badge of the site, not only the accepted ones: a blocked or lost badge is
listed as Blocked so that it also overrides the station's authorisation cache, which a mere
removal would leave accepting the card offline. A badge that left the site is removed.

Credit is not in the list: a station that accepts a badge offline starts a session whose
StartTransaction / TransactionEvent then gets the wallet's answer.

Building a list first records date-driven changes (a badge whose valid_from day arrived), so
call it inside a transaction and commit afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rfid.authorisation import AuthStatus, Decision, decide
from rfid.models import Badge, BadgeChange
from rfid.registry import badge_state, list_badges, list_version, record_changes
from rfid.uid import Uid, check_format, render

# The idTag fields' lengths: 1.6 IdToken is CiString20, 2.0.1 idToken is 36 characters.
ID_TAG_MAX = {"ocpp1.6": 20, "ocpp2.0.1": 36}

UpdateType = Literal["Full", "Differential"]


@dataclass(frozen=True, slots=True)
class ListEntry:
    uid: str  # canonical
    id_tag: str  # as this station's reader reports it
    decision: Decision | None  # None: remove the idTag from the station's list


@dataclass(frozen=True, slots=True)
class LocalListUpdate:
    site_id: str
    version: int
    update_type: UpdateType
    entries: tuple[ListEntry, ...]
    # badges whose idTag does not fit the protocol's field in this station's format
    skipped: tuple[str, ...] = field(default=())


def list_decision(badge: Badge, *, now: datetime, tz: tzinfo) -> Decision:
    """The badge's standing for a local list: its own state and dates, no credit, no sessions."""
    return decide(badge_state(badge), now=now, tz=tz)


async def refresh_validity(
    session: AsyncSession, site_id: str, *, now: datetime, tz: tzinfo
) -> int | None:
    """Record badges whose list status changed by the calendar alone; the new version or None."""
    changed: list[str] = []
    for badge in await list_badges(session, site_id=site_id):
        status: AuthStatus = list_decision(badge, now=now, tz=tz).status
        if badge.list_status is not None and badge.list_status != status.value:
            changed.append(badge.uid)
        if badge.list_status != status.value:
            badge.list_status = status.value
            session.add(badge)
    await session.flush()
    if not changed:
        return None
    return await record_changes(session, site_id, changed)


def _entry(badge: Badge, fmt: str, *, now: datetime, tz: tzinfo) -> ListEntry:
    uid = Uid(bytes.fromhex(badge.uid))
    return ListEntry(badge.uid, render(uid, fmt), list_decision(badge, now=now, tz=tz))


def _fits(entries: Sequence[ListEntry], limit: int) -> tuple[list[ListEntry], list[str]]:
    kept = [e for e in entries if len(e.id_tag) <= limit]
    return kept, [e.uid for e in entries if len(e.id_tag) > limit]


async def full_list(
    session: AsyncSession,
    site_id: str,
    fmt: str,
    *,
    now: datetime,
    tz: tzinfo,
    protocol: str = "ocpp1.6",
) -> LocalListUpdate:
    """Every badge of the site, rendered in `fmt`, at the site's current version."""
    check_format(fmt)
    await refresh_validity(session, site_id, now=now, tz=tz)
    entries = [_entry(b, fmt, now=now, tz=tz) for b in await list_badges(session, site_id=site_id)]
    kept, skipped = _fits(sorted(entries, key=lambda e: e.uid), ID_TAG_MAX.get(protocol, 20))
    return LocalListUpdate(
        site_id, await list_version(session, site_id), "Full", tuple(kept), tuple(skipped)
    )


async def update_since(
    session: AsyncSession,
    site_id: str,
    fmt: str,
    station_version: int,
    *,
    now: datetime,
    tz: tzinfo,
    protocol: str = "ocpp1.6",
) -> LocalListUpdate:
    """What a station at `station_version` needs: a differential update of the badges changed
    since (empty when it is current), or the full list when it has none or an unknown version.

    After changing a station's idtag_format, send it the full list: its entries are in the old
    format.
    """
    check_format(fmt)
    await refresh_validity(session, site_id, now=now, tz=tz)
    current = await list_version(session, site_id)
    if station_version <= 0 or station_version > current:
        return await full_list(session, site_id, fmt, now=now, tz=tz, protocol=protocol)
    changed = (await session.exec(
        select(BadgeChange.uid)
        .where(col(BadgeChange.site_id) == site_id, col(BadgeChange.version) > station_version)
        .distinct()
    )).all()
    present = {
        b.uid: b for b in await list_badges(session, site_id=site_id) if b.uid in set(changed)
    }
    entries: list[ListEntry] = []
    for uid in sorted(set(changed)):
        badge = present.get(uid)
        if badge is None:
            entries.append(ListEntry(uid, render(Uid(bytes.fromhex(uid)), fmt), None))
        else:
            entries.append(_entry(badge, fmt, now=now, tz=tz))
    kept, skipped = _fits(entries, ID_TAG_MAX.get(protocol, 20))
    return LocalListUpdate(site_id, current, "Differential", tuple(kept), tuple(skipped))
