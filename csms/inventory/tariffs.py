"""A site's tariff documents as devices' adapters need them."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Tariff


async def tariff_document(
    db: AsyncSession, site_id: str, tariff_id: str
) -> dict[str, Any] | None:
    """The tariff `tariff_id` of `site_id` as the site file gave it, or None."""
    row = await db.get(Tariff, (site_id, tariff_id))
    return dict(row.document) if row is not None else None
