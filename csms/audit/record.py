"""Writing staff actions: `watch(session, action)` puts the row into the first transaction the
session commits (the change's own), and `finish(...)` sets how the request or command ended,
or writes the row on its own when nothing was committed (a refusal, a command sent to a
station, a change made in another session)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.audit.models import StaffAction


def outcome_of(status: int) -> str:
    """HTTP status (or CLI exit code mapped onto one) to `ok`, `refused` or `failed`."""
    if status < 400:
        return "ok"
    return "refused" if status < 500 else "failed"


@dataclass
class PendingAction:
    """A staff action under way. `site_id` is the site the first scope check names (the site
    acted on, even when the check refuses), else the token's own site (`home_site`)."""

    channel: str
    actor: str
    role: str
    action: str
    at: datetime
    token_id: str | None = None
    target: str | None = None
    site_id: str | None = None
    home_site: str | None = None
    _row: StaffAction | None = field(default=None, repr=False)
    committed_id: int | None = None

    def note_site(self, site_id: str) -> None:
        if self.site_id is None:
            self.site_id = site_id

    @property
    def site(self) -> str | None:
        return self.site_id if self.site_id is not None else self.home_site

    def row(self, outcome: str, status: int | None, committed: bool) -> StaffAction:
        return StaffAction(
            at=self.at, channel=self.channel, actor=self.actor[:80], role=self.role,
            token_id=self.token_id, action=self.action[:160],
            target=None if self.target is None else self.target[:400],
            site_id=self.site, outcome=outcome, status=status, committed=committed,
        )


def watch(target: Session | type[Session], pending: PendingAction) -> Callable[[], None]:
    """Add `pending`'s row to the first transaction committed by `target`: one session, or
    (for a CLI command, which is the whole process) every session. Returns the remover."""

    def before_commit(inner: Session) -> None:
        if pending.committed_id is None and pending._row is None:
            pending._row = pending.row("ok", None, committed=True)
            inner.add(pending._row)

    def after_commit(inner: Session) -> None:
        if pending._row is not None and pending.committed_id is None:
            pending.committed_id = pending._row.id

    def after_soft_rollback(inner: Session, previous: object) -> None:
        if pending.committed_id is None:
            pending._row = None

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_commit", before_commit), ("after_commit", after_commit),
        ("after_soft_rollback", after_soft_rollback),
    ]
    for name, listener in listeners:
        event.listen(target, name, listener)

    def remove() -> None:
        for name, listener in listeners:
            event.remove(target, name, listener)

    return remove


async def finish(
    factory: async_sessionmaker[AsyncSession], pending: PendingAction, status: int,
    outcome: str | None = None,
) -> None:
    """Record how the action ended (`outcome` from the HTTP `status` unless given): update the
    committed row, or write one now."""
    outcome = outcome if outcome is not None else outcome_of(status)
    async with factory() as session:
        if pending.committed_id is not None:
            await session.exec(
                update(StaffAction)
                .where(StaffAction.id == pending.committed_id)  # type: ignore[arg-type]
                .values(outcome=outcome, status=status, site_id=pending.site)
            )
        else:
            session.add(pending.row(outcome, status, committed=False))
        await session.commit()
