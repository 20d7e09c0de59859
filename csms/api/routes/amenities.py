"""The site's machines (devices.md, the amenities list): state, since when, the open cycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from amenities.machines import MachineView, machine_views
from csms.api.deps import DbSession, Principal, require_roles
from wallet.models import Account

router = APIRouter(tags=["amenities"])


class CyclePublic(BaseModel):
    started_at: datetime | None
    running_s: int
    energy_wh: int
    cost_gross: str | None
    currency: str | None
    # Whose cycle it is: the household's own (`mine`), and its account id for staff and for
    # that household only.
    mine: bool
    account: str | None = None


class MachinePublic(BaseModel):
    id: str
    kind: str
    building: str | None
    state: str
    since: datetime | None
    cycle: CyclePublic | None = None
    fault: str | None = None


def _public(view: MachineView, principal: Principal, refs: dict[str, str]) -> MachinePublic:
    staff = principal.role != "resident"
    cycle = None
    if view.cycle is not None:
        mine = view.cycle.account_id is not None and view.cycle.account_id == principal.account_id
        cycle = CyclePublic(
            started_at=view.cycle.started_at, running_s=view.cycle.running_s,
            energy_wh=view.cycle.energy_wh,
            cost_gross=str(view.cycle.cost_gross) if view.cycle.cost_gross is not None
            and (mine or staff) else None,
            currency=view.cycle.currency, mine=mine,
            account=refs.get(view.cycle.account_id or "") if mine or staff else None,
        )
    return MachinePublic(id=view.id, kind=view.kind, building=view.building, state=view.state,
                         since=view.since, cycle=cycle, fault=view.fault if staff else None)


@router.get(
    "/sites/{site_id}/amenities",
    summary="The site's machines: free, authorised, running, ending or out of order",
)
async def amenities_route(
    site_id: str,
    request: Request,
    session: DbSession,
    principal: Annotated[
        Principal, Depends(require_roles("admin", "owner", "installer", "resident"))],
) -> list[MachinePublic]:
    principal.ensure_site(site_id)
    clock = getattr(request.app.state, "clock", None)
    now = clock() if clock is not None else datetime.now(UTC)
    views = await machine_views(session, site_id, now)
    ids = {v.cycle.account_id for v in views if v.cycle and v.cycle.account_id}
    refs = {}
    for account_id in ids:
        account = await session.get(Account, account_id)
        if account is not None:
            refs[account_id] = account.ref
    return [_public(view, principal, refs) for view in views]
