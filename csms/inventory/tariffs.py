"""A site's tariffs: the one service the site file, the JSON API and the owner's editor use to
read, validate and publish them. Publishing stores a new numbered version when the document
changed; the `tariff` row holds the newest, and a running use keeps the document it started
with (billing snapshots it), so a new version never reprices a session under way."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.documents import to_json_safe
from csms.inventory.models import Site, Station, Tariff, TariffVersion
from pricing import Tariff as RatedTariff
from pricing import TariffError, load_tariff


class TariffProblems(ValueError):
    """Every problem of a tariff document, each `"<path>: <message>"` as the contract says."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


async def tariff_document(
    db: AsyncSession, site_id: str, tariff_id: str
) -> dict[str, Any] | None:
    """The tariff `tariff_id` of `site_id` as the site file gave it, or None."""
    row = await db.get(Tariff, (site_id, tariff_id))
    return dict(row.document) if row is not None else None


async def site_tariffs(db: AsyncSession, site_id: str) -> Sequence[Tariff]:
    return (await db.exec(select(Tariff).where(col(Tariff.site_id) == site_id)
                          .order_by(col(Tariff.id)))).all()


def checked_tariff(document: Any, site: Site) -> RatedTariff:
    """The document as pricing reads it, judged as the contract says (site defaults for the time
    zone and holidays); TariffProblems names every problem."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise TariffProblems(["(document): must be a mapping"])
    if document.get("currency") not in (None, site.currency):
        problems.append(f"currency: {document.get('currency')!r} differs from the site's "
                        f"{site.currency!r}")
    try:
        rated = load_tariff(document, site_timezone=site.timezone, site_country=site.country,
                            site_region=site.region)
    except TariffError as error:
        raise TariffProblems([*error.problems, *problems]) from None
    if problems:
        raise TariffProblems(problems)
    return rated


async def latest_version(db: AsyncSession, site_id: str, tariff_id: str) -> int:
    found = (await db.exec(select(func.max(TariffVersion.version)).where(
        col(TariffVersion.site_id) == site_id, col(TariffVersion.tariff_id) == tariff_id))).one()
    return int(found or 0)


async def publish_tariff(
    db: AsyncSession, site: Site, document: dict[str, Any], *, now: datetime, actor: str,
) -> int:
    """Validate and publish; returns the version now current (unchanged documents keep theirs).
    Flushes, the caller commits. TariffProblems changes nothing."""
    checked_tariff(document, site)
    tariff_id = str(document["id"])
    stored = to_json_safe(document)
    current = await latest_version(db, site.id, tariff_id)
    row = await db.get(Tariff, (site.id, tariff_id))
    if row is not None and row.document == stored and current > 0:
        return current
    if row is None:
        db.add(Tariff(site_id=site.id, id=tariff_id, document=stored))
    else:
        row.document = stored
        db.add(row)
    db.add(TariffVersion(site_id=site.id, tariff_id=tariff_id, version=current + 1,
                         document=stored, published_at=now, published_by=actor[:80]))
    await db.flush()
    return current + 1


async def tariff_versions(db: AsyncSession, site_id: str, tariff_id: str
                          ) -> Sequence[TariffVersion]:
    return (await db.exec(select(TariffVersion).where(
        col(TariffVersion.site_id) == site_id, col(TariffVersion.tariff_id) == tariff_id)
        .order_by(col(TariffVersion.version).desc()))).all()


async def tariff_in_use(db: AsyncSession, site_id: str, tariff_id: str) -> bool:
    station = (await db.exec(select(Station.id).where(
        col(Station.site_id) == site_id, col(Station.tariff_id) == tariff_id).limit(1))).first()
    return station is not None
