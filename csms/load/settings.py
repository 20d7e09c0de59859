"""A site's load settings: stored from the site file's `load:` section, read back for export
and as the allocator's `LoadSettings`."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.load.allocation import LoadSettings
from csms.load.models import SiteLoad

if TYPE_CHECKING:
    from csms.inventory.sitefile import LoadSection


async def store_load_section(
    session: AsyncSession, site_id: str, section: LoadSection | None
) -> None:
    """Keep the section as written; a file without one removes the site's load management."""
    row = await session.get(SiteLoad, site_id)
    if section is None:
        if row is not None:
            await session.delete(row)
        return
    written = section.model_dump(mode="json", exclude_unset=True)
    if row is None:
        session.add(SiteLoad(site_id=site_id, section=written))
    else:
        row.section = written
        session.add(row)


async def load_section_document(session: AsyncSession, site_id: str) -> dict[str, Any] | None:
    row = await session.get(SiteLoad, site_id)
    return dict(row.section) if row is not None else None


def load_settings(section: dict[str, Any]) -> LoadSettings:
    return LoadSettings(
        limit_a=Decimal(str(section["limit_a"])),
        phases=int(section.get("phases", 3)),
        reserve_a=Decimal(str(section.get("reserve_a", 0))),
        min_current_a=Decimal(str(section.get("min_current_a", 6))),
        strategy=str(section.get("strategy", "equal")),
        rotate_after_s=int(section.get("rotation_s", 900)),
    )


async def fallback_of(session: AsyncSession, site_id: str) -> tuple[int, int] | None:
    """(amperes, phases) of the static profile a station of the site gets at boot, or None
    when the site has no load management."""
    row = await session.get(SiteLoad, site_id)
    if row is None:
        return None
    return int(Decimal(str(row.section.get("fallback_a", 6)))), int(row.section.get("phases", 3))
