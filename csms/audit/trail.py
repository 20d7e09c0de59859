"""The audit trail of a site: staff actions and money movements, oldest first, in pages.

Money movements are read from the wallet's journal (each entry with its postings), not copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.audit.models import StaffAction
from wallet.models import Account, JournalEntry, Posting

KINDS = ("staff", "money")


@dataclass(frozen=True, slots=True)
class TrailPage:
    items: list[dict[str, Any]]
    next_offset: int | None


async def trail(
    session: AsyncSession,
    *,
    site_id: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> TrailPage:
    """Items at `since` or later and before `until`, ordered by time; `offset` counts items of
    both kinds together."""
    wanted = offset + limit + 1
    merged: list[tuple[datetime, int, int | str, dict[str, Any]]] = []
    if kind in (None, "staff"):
        for action in await _staff(session, site_id, since, until, wanted):
            merged.append((action.at, 0, action.id or 0, _staff_item(action)))
    if kind in (None, "money"):
        for entry, item in await _money(session, site_id, since, until, wanted):
            merged.append((entry.created_at, 1, entry.id, item))
    merged.sort(key=lambda row: (row[0], row[1], str(row[2])))
    page = [row[3] for row in merged[offset:offset + limit]]
    more = len(merged) > offset + limit
    return TrailPage(page, offset + limit if more else None)


async def _staff(
    session: AsyncSession, site_id: str | None, since: datetime | None,
    until: datetime | None, wanted: int,
) -> list[StaffAction]:
    query = select(StaffAction)
    if site_id is not None:
        query = query.where(StaffAction.site_id == site_id)
    if since is not None:
        query = query.where(col(StaffAction.at) >= since)
    if until is not None:
        query = query.where(col(StaffAction.at) < until)
    query = query.order_by(col(StaffAction.at), col(StaffAction.id)).limit(wanted)
    return list((await session.exec(query)).all())


def _staff_item(action: StaffAction) -> dict[str, Any]:
    return {
        "kind": "staff", "at": action.at.isoformat(), "id": action.id,
        "channel": action.channel, "actor": action.actor, "role": action.role,
        "token_id": action.token_id, "action": action.action, "target": action.target,
        "site_id": action.site_id, "outcome": action.outcome, "status": action.status,
        "committed": action.committed,
    }


async def _money(
    session: AsyncSession, site_id: str | None, since: datetime | None,
    until: datetime | None, wanted: int,
) -> list[tuple[JournalEntry, dict[str, Any]]]:
    query = select(JournalEntry)
    if site_id is not None:
        query = query.where(JournalEntry.site_id == site_id)
    if since is not None:
        query = query.where(col(JournalEntry.created_at) >= since)
    if until is not None:
        query = query.where(col(JournalEntry.created_at) < until)
    query = query.order_by(col(JournalEntry.created_at), col(JournalEntry.id)).limit(wanted)
    entries = list((await session.exec(query)).all())
    if not entries:
        return []
    legs: dict[str, list[dict[str, str]]] = {}
    postings = await session.exec(
        select(Posting)
        .where(col(Posting.entry_id).in_([e.id for e in entries]))
        .order_by(col(Posting.id))
    )
    for posting in postings.all():
        legs.setdefault(posting.entry_id, []).append(
            {"ledger_account": posting.ledger_account_id, "amount": str(posting.amount)}
        )
    account_ids = {e.account_id for e in entries if e.account_id is not None}
    refs: dict[str, str] = {}
    if account_ids:
        rows = await session.exec(
            select(Account.id, Account.ref).where(col(Account.id).in_(account_ids))
        )
        refs = {row[0]: row[1] for row in rows.all()}
    return [
        (
            entry,
            {
                "kind": "money", "at": entry.created_at.isoformat(), "id": entry.id,
                "entry_kind": entry.kind, "key": entry.key, "site_id": entry.site_id,
                "account_id": refs.get(entry.account_id) if entry.account_id else None,
                "description": entry.description, "reference": entry.reference,
                "reason": entry.reason, "staff": entry.staff, "postings": legs.get(entry.id, []),
            },
        )
        for entry in entries
    ]
