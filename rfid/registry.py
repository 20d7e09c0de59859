"""The badge registry: register, block and unblock badges and find the badge behind an idTag.

Async functions on the caller's `AsyncSession`; they flush and never commit, so a caller can put
several changes in one transaction. Every change to a badge appends to the site's list version
log (`badge_change`), which is what the chargers' local lists are built from.

Badges are scoped to their site: the same UID may be a badge on two sites (4-byte MIFARE UIDs
are not unique worldwide), so every function that finds a badge takes the site, and a badge is
only found through the site of the device or the caller that asks. `account_id` here is the
account's internal key (`account.id`), never the site-local ref a person types.

rfid may not import wallet, yet badges belong to wallet's accounts: the two account columns read
here (`id`, `site_id`) are named in `_ACCOUNT` below rather than imported.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, column, func, or_, table, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from column_types import dialect_insert
from rfid.authorisation import BADGE_STATUSES, BadgeState
from rfid.models import Badge, BadgeChange, BadgeListVersion
from rfid.uid import CASCADE_TAG, TagMatch, Uid, UidError, match_id_tag, parse, readings

_ACCOUNT = table("account", column("id"), column("site_id"))

ORIGINS = ("issued", "foreign")
LABEL_MAX = 80


class RegistryError(ValueError):
    """Bad input for the registry; `field` names it. Nothing was changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BadgeNotFound(RegistryError):
    def __init__(self, uid: str) -> None:
        super().__init__("uid", f"no badge {uid} is registered on this site")


@dataclass(frozen=True, slots=True)
class Lookup:
    """The badge an idTag stands for and how it was found (for the format-mismatch log)."""

    badge: Badge
    match: TagMatch


def badge_state(badge: Badge) -> BadgeState:
    return BadgeState(badge.uid, badge.account_id, badge.status, badge.valid_from,
                      badge.valid_until)


def check_uid(value: str | Uid, fmt: str = "hex") -> Uid:
    """A UID fit to be registered: parsed, and not one that would change or mislead."""
    try:
        uid = value if isinstance(value, Uid) else parse(value, fmt)
    except UidError as error:
        raise RegistryError("format" if error.field == "format" else "uid", str(error)) from None
    if uid.is_cascade_fragment:
        raise RegistryError(
            "uid",
            f"{uid} starts with the cascade tag {CASCADE_TAG:02X}: it is the first 3 bytes of a "
            "7- or 10-byte UID as a reader saw them; register the full UID",
        )
    if len(uid.data) == 4 and uid.data[0] == 0x08:
        raise RegistryError(
            "uid",
            f"{uid} is a random UID (first byte 08): it changes at every tap, as on phones and "
            "privacy cards, so it cannot identify a badge",
        )
    return uid


async def account_site(session: AsyncSession, account_id: str) -> str:
    """The site of `account_id`; RegistryError if there is no such account."""
    site_id = (await session.exec(
        select(_ACCOUNT.c.site_id).where(_ACCOUNT.c.id == account_id)
    )).one_or_none()
    if site_id is None:
        raise RegistryError("account_id", f"unknown account {account_id!r}")
    return str(site_id)


async def record_changes(session: AsyncSession, site_id: str, uids: Iterable[str]) -> int:
    """Bump the site's list version once and log `uids` as changed at it; returns the version.

    The upsert takes the version row's lock on PostgreSQL (and SQLite's write lock is already
    held), so versions follow commit order per site.
    """
    bound = await session.connection()
    versions = BadgeListVersion.__table__  # type: ignore[attr-defined]
    statement = (
        dialect_insert(bound.dialect.name, versions)
        .values(site_id=site_id, version=1)
        .on_conflict_do_update(
            index_elements=["site_id"], set_={"version": versions.c.version + 1}
        )
        .returning(versions.c.version)
    )
    version = int((await session.exec(statement)).scalar_one())
    for uid in sorted(set(uids)):
        session.add(BadgeChange(site_id=site_id, uid=uid, version=version))
    await session.flush()
    return version


async def list_version(session: AsyncSession, site_id: str) -> int:
    row = await session.get(BadgeListVersion, site_id)
    return 0 if row is None else row.version


def _check_dates(valid_from: date | None, valid_until: date | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until < valid_from:
        raise RegistryError(
            "valid_until",
            f"{valid_until.isoformat()} is before valid_from {valid_from.isoformat()}",
        )


def _check_label(label: str | None) -> str | None:
    if label is None:
        return None
    cleaned = label.strip()
    if len(cleaned) > LABEL_MAX:
        raise RegistryError("label", f"{len(cleaned)} characters; at most {LABEL_MAX}")
    return cleaned or None


async def register_badge(
    session: AsyncSession,
    *,
    uid: str | Uid,
    account_id: str,
    now: datetime,
    fmt: str = "hex",
    label: str | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    origin: str = "issued",
    card_type: str | None = None,
    max_sessions: int = 1,
) -> Badge:
    """Register a badge for an account; `uid` may be written in any format that keeps it whole.

    Everything is checked before anything is written; RegistryError names the field.
    """
    checked = check_uid(uid, fmt)
    label = _check_label(label)
    _check_dates(valid_from, valid_until)
    if origin not in ORIGINS:
        raise RegistryError("origin", f"{origin!r} is not one of {', '.join(ORIGINS)}")
    if max_sessions < 1:
        raise RegistryError("max_sessions", f"{max_sessions} is below 1")
    site_id = await account_site(session, account_id)
    existing = await session.get(Badge, (site_id, checked.hex))
    if existing is not None:
        raise RegistryError("uid", f"badge {checked.hex} is already registered on this site")
    badge = Badge(
        site_id=site_id, uid=checked.hex, account_id=account_id, label=label, status="active",
        valid_from=valid_from, valid_until=valid_until, origin=origin, card_type=card_type,
        max_sessions=max_sessions, updated_at=now,
    )
    session.add(badge)
    await session.flush()
    await record_changes(session, site_id, [badge.uid])
    return badge


async def get_badge(session: AsyncSession, site_id: str, uid: str | Uid) -> Badge:
    """The badge of `site_id` with this UID (written in hex, any case and separators)."""
    checked = uid if isinstance(uid, Uid) else _parse_hex(uid)
    badge = await session.get(Badge, (site_id, checked.hex))
    if badge is None:
        raise BadgeNotFound(checked.hex)
    return badge


def _parse_hex(value: str) -> Uid:
    try:
        return parse(value, "hex")
    except UidError as error:
        raise RegistryError("uid", str(error)) from None


async def list_badges(
    session: AsyncSession, *, site_id: str | None = None, account_id: str | None = None
) -> Sequence[Badge]:
    query = select(Badge).order_by(col(Badge.site_id), col(Badge.account_id), col(Badge.uid))
    if account_id is not None:
        query = query.where(col(Badge.account_id) == account_id)
    if site_id is not None:
        query = query.where(col(Badge.site_id) == site_id)
    return (await session.exec(query)).all()


async def set_status(
    session: AsyncSession, site_id: str, uid: str | Uid, status: str, *, now: datetime
) -> Badge:
    """Set a badge's status; a change is logged (and so reaches every local list) at once."""
    if status not in BADGE_STATUSES:
        raise RegistryError("status", f"{status!r} is not one of {', '.join(BADGE_STATUSES)}")
    badge = await get_badge(session, site_id, uid)
    if badge.status == status:
        return badge
    badge.status = status
    badge.updated_at = now
    badge.list_status = None
    session.add(badge)
    await session.flush()
    await record_changes(session, badge.site_id, [badge.uid])
    return badge


async def block_badge(
    session: AsyncSession, site_id: str, uid: str | Uid, *, now: datetime, lost: bool = False
) -> Badge:
    return await set_status(session, site_id, uid, "lost" if lost else "blocked", now=now)


async def unblock_badge(
    session: AsyncSession, site_id: str, uid: str | Uid, *, now: datetime
) -> Badge:
    """A blocked or lost (and found) badge works again; an expired one needs new dates."""
    badge = await get_badge(session, site_id, uid)
    if badge.status == "expired":
        raise RegistryError("status", f"badge {badge.uid} has expired; it cannot be unblocked")
    return await set_status(session, site_id, badge.uid, "active", now=now)


async def update_badge(
    session: AsyncSession,
    site_id: str,
    uid: str | Uid,
    *,
    now: datetime,
    label: str | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    max_sessions: int | None = None,
    account_id: str | None = None,
) -> Badge:
    """Change what is given (None keeps the value); moving a badge to an account on another
    site moves it to that site and logs it on both, so the old site's chargers drop it."""
    badge = await get_badge(session, site_id, uid)
    new_from = valid_from if valid_from is not None else badge.valid_from
    new_until = valid_until if valid_until is not None else badge.valid_until
    _check_dates(new_from, new_until)
    if max_sessions is not None and max_sessions < 1:
        raise RegistryError("max_sessions", f"{max_sessions} is below 1")
    old_site = badge.site_id
    new_site = old_site if account_id is None else await account_site(session, account_id)
    if new_site != old_site and await session.get(Badge, (new_site, badge.uid)) is not None:
        raise RegistryError(
            "account_id", f"badge {badge.uid} is already registered on the account's site"
        )
    if label is not None:
        badge.label = _check_label(label)
    badge.valid_from, badge.valid_until = new_from, new_until
    if max_sessions is not None:
        badge.max_sessions = max_sessions
    if account_id is not None:
        badge.account_id = account_id
        badge.site_id = new_site
    badge.updated_at = now
    badge.list_status = None
    session.add(badge)
    await session.flush()
    for site_id in sorted({old_site, new_site}):
        await record_changes(session, site_id, [badge.uid])
    return badge


def _lookup_statement(ranges: int, *, site_each: bool = False) -> Any:
    """A site's badges whose UID begins with one of `ranges` hex prefixes (the UID itself
    included), as ranges of the primary key: LIKE 'prefix%' cannot use the index on SQLite or
    PostgreSQL and read every badge of the site on each badge shown. Canonical UIDs are
    uppercase hex, all below 'G'. With `site_each`, every prefix with a site of its own
    (`look_up_ahead`). Built once per number of prefixes: a badge is shown at every
    Authorize, start and stop, and building the query cost more than running it."""
    statement = _LOOKUPS.get((ranges, site_each))
    if statement is None:
        uid, site = col(Badge.uid), col(Badge.site_id)
        # The site in every branch: SQLite then searches the index once per prefix instead of
        # reading all of the site's badges (7 µs against 560 µs for 2,000 badges).
        statement = select(Badge).where(or_(*(
            and_(site == bindparam(f"site{n}" if site_each else "site_id"),
                 uid >= bindparam(f"low{n}"), uid < bindparam(f"high{n}"))
            for n in range(ranges)
        )))
        _LOOKUPS[(ranges, site_each)] = statement
    return statement


_LOOKUPS: dict[tuple[int, bool], Any] = {}


def _ranges_lookup() -> Any:
    """`_lookup_statement` with the (site, low, high) ranges as three arrays (PostgreSQL),
    each range one index range scan. PostgreSQL planned the OR of 100 ranges a busy batch
    shows in 18 ms (3 ms to run), on every batch; this plans in a fraction of a millisecond
    and needs no padding. OFFSET 0 keeps the ranges' subquery from being merged into a join
    that read every badge once per range (60 ms)."""
    text_array = ARRAY(String)
    ranges = func.unnest(
        bindparam("sites", type_=text_array), bindparam("lows", type_=text_array),
        bindparam("highs", type_=text_array),
    ).table_valued("site_id", "low", "high").render_derived(name="ranges")
    uid, site = col(Badge.uid), col(Badge.site_id)
    in_range = select(Badge).where(
        site == ranges.c.site_id, uid >= ranges.c.low, uid < ranges.c.high
    ).offset(0).lateral("in_range")
    badge = aliased(Badge, in_range)
    return select(badge).select_from(ranges).join(in_range, true())


_RANGES_LOOKUP = _ranges_lookup()


async def lookup(
    session: AsyncSession, id_tag: str, station_format: str, *, site_id: str
) -> Lookup | None:
    """The badge of `site_id` behind an idTag as a station of that site configured with
    `station_format` sent it; another site's badge with the same UID is never found.

    Other formats and truncated forms are tried too (see `rfid.uid.match_id_tag`); when the
    match came through another format, `Lookup.match.format_mismatch` is set so the caller logs
    "station X reports in format Y, configured Z". An unknown `station_format` raises UidError.
    An answer `look_up_ahead` left in the session is taken without reading again.
    """
    ahead: dict[BadgeQuestion, Lookup | None] | None = session.info.get(_AHEAD)
    question = (id_tag, station_format, site_id)
    if ahead is not None and question in ahead:
        return ahead[question]
    prefixes = _uid_prefixes(id_tag, station_format)
    if not prefixes:
        return None
    params: dict[str, str] = {"site_id": site_id}
    for n, prefix in enumerate(prefixes):
        params[f"low{n}"], params[f"high{n}"] = prefix, prefix + "G"
    rows = (await session.exec(_lookup_statement(len(prefixes)), params=params)).all()
    return _matched(id_tag, station_format, rows)


RANGES_STEP = 32
# What `lookup` is asked: (idTag, the station's format, site).
BadgeQuestion = tuple[str, str, str]
# Where `look_up_ahead` leaves its answers in a session, for `lookup`.
_AHEAD = "rfid.registry.ahead"


async def look_up_ahead(session: AsyncSession, questions: list[BadgeQuestion]) -> None:
    """`lookup` for many idTags at once, in one query: the answers stay in `session` for its
    later `lookup` calls with the same questions (the badges that a batch of station messages
    shows). Only for a session that changes no badge after; an idTag that `lookup` would
    refuse (malformed, unknown format) is left for it to refuse."""
    asked: list[tuple[BadgeQuestion, list[str]]] = []
    # Each question and each (site, prefix) range once: a batch pads its questions with
    # repeats, and formats of one UID share prefixes; the statement is padded below.
    unique: dict[tuple[str, str], None] = {}
    for question in dict.fromkeys(questions):
        id_tag, station_format, site_id = question
        try:
            prefixes = _uid_prefixes(id_tag, station_format)
        except (UidError, ValueError):
            continue
        asked.append((question, prefixes))
        unique.update(((site_id, prefix), None) for prefix in prefixes)
    ranges = list(unique)
    found: list[Badge] = []
    if ranges and (await session.connection()).dialect.name == "postgresql":
        rows = (await session.exec(_RANGES_LOOKUP, params={
            "sites": [site_id for site_id, _prefix in ranges],
            "lows": [prefix for _site_id, prefix in ranges],
            "highs": [prefix + "G" for _site_id, prefix in ranges],
        })).all()
        # A badge in two ranges (prefixes of one another) comes twice.
        found = list({(badge.site_id, badge.uid): badge for badge in rows}.values())
    elif ranges:
        # Padded with repeats to a multiple of RANGES_STEP: a few statements to build and
        # compile, not one for every size a batch happens to have.
        ranges += [ranges[-1]] * (-len(ranges) % RANGES_STEP)
        params: dict[str, str] = {}
        for n, (site_id, prefix) in enumerate(ranges):
            params[f"site{n}"], params[f"low{n}"], params[f"high{n}"] = (
                site_id, prefix, prefix + "G")
        found = list((await session.exec(
            _lookup_statement(len(ranges), site_each=True), params=params)).all())
    # Each site's badges sorted by UID: a prefix's candidates are one run from its bisection,
    # not a scan of everything found for every question (hundreds of each in a busy batch).
    by_site: dict[str, list[Badge]] = {}
    for badge in sorted(found, key=lambda badge: badge.uid):
        by_site.setdefault(badge.site_id, []).append(badge)
    ahead: dict[BadgeQuestion, Lookup | None] = session.info.setdefault(_AHEAD, {})
    for question, prefixes in asked:
        id_tag, station_format, site_id = question
        site_badges = by_site.get(site_id, [])
        candidates: list[Badge] = []
        for prefix in prefixes:
            at = bisect_left(site_badges, prefix, key=lambda badge: badge.uid)
            while at < len(site_badges) and site_badges[at].uid.startswith(prefix):
                candidates.append(site_badges[at])
                at += 1
        ahead[question] = _matched(id_tag, station_format, candidates)


def _uid_prefixes(id_tag: str, station_format: str) -> list[str]:
    """The UID prefixes an idTag may stand for: every UID beginning with one of its readings
    (a full 10-byte UID begins only itself), and for a 4-byte reading that starts with the
    cascade tag, those beginning with its other 3 bytes."""
    prefixes: list[str] = []
    for reading in readings(id_tag, station_format):
        prefixes.append(reading.data.hex().upper())
        if len(reading.data) == 4 and reading.data[0] == CASCADE_TAG:
            prefixes.append(reading.data[1:].hex().upper())
    return prefixes


def _matched(id_tag: str, station_format: str, rows: Iterable[Badge]) -> Lookup | None:
    """The badge among `rows` (the candidates of its prefixes) that the idTag stands for."""
    candidates = {badge.uid: badge for badge in rows}
    found = match_id_tag(
        id_tag, station_format, (Uid(bytes.fromhex(uid)) for uid in candidates)
    )
    if found is None:
        return None
    return Lookup(candidates[found.uid.hex], found)
