"""The audit log over real HTTP on each database: every staff change (done, refused, failed)
with who, role, token id, action, target, site and outcome, written in the change's own
transaction; money movements read from the wallet journal; owners see their site only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from csms.audit.models import StaffAction
from csms.audit.record import PendingAction, finish, watch
from csms.db.engine import session_factory
from csms.inventory.models import Site
from csms.serve import running_node
from tests.conftest import Api, node_settings


def site(site_id: str) -> str:
    return (f"site: {{id: {site_id}, name: {site_id}, timezone: Europe/Vienna, currency: EUR, "
            f"country: AT}}\naccounts: [{{id: a-01, name: A}}]\n")


@pytest.fixture
async def node_api(database_url: str) -> AsyncIterator[Api]:
    async with running_node(node_settings(database_url)) as node, httpx.AsyncClient(
        base_url=node.http_url, timeout=30
    ) as client:
        yield Api(node, client)


def token_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_")[1]


async def audit(api: Api, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = await api.client.get("/api/v1/audit", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def settled(api: Api, headers: dict[str, str], staff_actions: int) -> dict[str, Any]:
    """The trail once `staff_actions` actions are finished: an outcome is written just after
    its answer went out."""
    for _ in range(100):
        trail = await audit(api, headers)
        staff = [item for item in trail["items"] if item["kind"] == "staff"]
        if len(staff) == staff_actions and all(item["status"] for item in staff):
            return trail
        await asyncio.sleep(0.05)
    raise AssertionError(f"audit not settled: {trail}")


async def test_staff_actions_and_money_movements(node_api: Api) -> None:
    api = node_api
    admin = await api.admin()
    for site_id in ("s1", "s2"):
        imported = await api.client.post("/api/v1/sites/import", content=site(site_id),
                                         headers=admin)
        assert imported.status_code == 200
    owner, other_owner = await api.token("owner", site="s1"), await api.token("owner", site="s2")
    resident = await api.token("resident", site="s1", account="a-01")
    topup = await api.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                  json={"amount": "20.00", "reference": "Q-1"})
    assert topup.status_code == 201
    invalid = await api.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                    json={"amount": "abc", "reference": "Q-2"})
    assert invalid.status_code == 422
    foreign = await api.client.post("/api/v1/accounts/a-01/topups?site=s1", headers=other_owner,
                                    json={"amount": "5.00", "reference": "Q-3"})
    assert foreign.status_code == 403
    # Reads and residents' own actions are not staff actions.
    assert (await api.client.get("/api/v1/accounts/a-01/wallet", headers=owner)).is_success
    assert (await api.client.get("/api/v1/accounts/a-01/wallet", headers=resident)).is_success

    trail = await settled(api, owner, 4)  # an owner's own site by default
    assert trail["next_offset"] is None
    staff = [item for item in trail["items"] if item["kind"] == "staff"]
    assert [(i["action"], i["role"], i["status"], i["outcome"], i["committed"]) for i in staff] == [
        ("POST /api/v1/sites/import", "admin", 200, "ok", True),
        ("POST /api/v1/accounts/{account_id}/topups", "owner", 201, "ok", True),
        ("POST /api/v1/accounts/{account_id}/topups", "owner", 422, "refused", False),
        ("POST /api/v1/accounts/{account_id}/topups", "owner", 403, "refused", False),
    ]
    assert all(item["site_id"] == "s1" and item["channel"] == "api" for item in staff)
    assert staff[0]["token_id"] == token_id(admin) and staff[0]["target"] is None
    assert staff[1]["token_id"] == token_id(owner)
    assert staff[1]["actor"] == f"owner:{token_id(owner)}"
    assert staff[1]["target"] == "account_id=a-01"
    assert staff[3]["token_id"] == token_id(other_owner)
    money = [item for item in trail["items"] if item["kind"] == "money"]
    assert len(money) == 1
    [entry] = money
    assert entry["id"] == topup.json()["entry_id"]
    assert (entry["account_id"], entry["reference"], entry["staff"]) == (
        "a-01", "Q-1", token_id(owner))
    assert sum(Decimal(leg["amount"]) for leg in entry["postings"]) == 0
    assert Decimal("20.00") in {Decimal(leg["amount"]) for leg in entry["postings"]}
    times = [item["at"] for item in trail["items"]]
    assert times == sorted(times)

    # s2's owner sees s2 only; the admin names any site; residents and installers read nothing.
    assert (await api.client.get("/api/v1/audit?site=s1", headers=other_owner)).status_code == 403
    s2 = await audit(api, other_owner)
    assert [i["action"] for i in s2["items"]] == ["POST /api/v1/sites/import"]
    # The audit reads themselves are not actions.
    assert len((await audit(api, admin, site="s1"))["items"]) == len(trail["items"])
    assert (await audit(api, admin, site="s1"))["items"] == trail["items"]
    assert (await api.client.get("/api/v1/audit", headers=resident)).status_code == 403
    installer = await api.token("installer", site="s1")
    assert (await api.client.get("/api/v1/audit", headers=installer)).status_code == 403

    # Pages of two, filters by kind and time.
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await audit(api, owner, limit=2, offset=offset)
        pages.extend(page["items"])
        offset = page["next_offset"]
    assert pages == trail["items"]
    assert (await audit(api, owner, kind="money"))["items"] == money
    assert (await audit(api, owner, since=staff[1]["at"], kind="staff"))["items"] == staff[1:]
    assert (await audit(api, owner, until=staff[1]["at"], kind="staff"))["items"] == staff[:1]


async def test_one_row_per_action(node_api: Api) -> None:
    """The row exists once per action, even when the request commits more than once."""
    api = node_api
    admin = await api.admin()
    for _ in range(2):
        assert (await api.client.post("/api/v1/sites/import", content=site("s1"),
                                      headers=admin)).status_code == 200
    await settled(api, admin, 2)
    async with session_factory(api.node.engine)() as session:
        rows = (await session.exec(select(StaffAction))).all()
    assert len(rows) == 2 and all(row.committed and row.status == 200 for row in rows)


async def test_the_row_commits_and_rolls_back_with_the_change(engine: AsyncEngine) -> None:
    factory = session_factory(engine)
    now = datetime.now(UTC)

    def pending(site_id: str) -> PendingAction:
        return PendingAction(channel="api", actor="admin:t1", role="admin", token_id="t1",
                             action="POST /x", at=now, site_id=site_id)

    kept, lost = pending("kept"), pending("lost")
    async with factory() as session:
        watch(session.sync_session, kept)
        session.add(Site(id="kept", name="K", timezone="UTC", currency="EUR", country="AT"))
        await session.commit()
    async with factory() as session:
        watch(session.sync_session, lost)
        session.add(Site(id="lost", name="L", timezone="UTC", currency="EUR", country="AT"))
        await session.flush()
        await session.rollback()
    async with factory() as session:
        rows = (await session.exec(select(StaffAction))).all()
    assert [(r.site_id, r.committed, r.outcome, r.status) for r in rows] == [
        ("kept", True, "ok", None)]
    assert kept.committed_id == rows[0].id and lost.committed_id is None
    # How each ended is written afterwards: the kept row updated, the lost one on its own.
    await finish(factory, kept, 201)
    await finish(factory, lost, 500)
    async with factory() as session:
        rows = (await session.exec(select(StaffAction).order_by(col(StaffAction.id)))).all()
    assert [(r.site_id, r.committed, r.outcome, r.status) for r in rows] == [
        ("kept", True, "ok", 201), ("lost", False, "failed", 500)]
