"""The demo's people are created once, with passwords that work, and never again."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.simulator.demo_users import ensure_demo_users
from tests.web.conftest import Portal, sign_in_client


async def test_demo_people_are_created_once_and_can_sign_in(portal: Portal) -> None:
    people = await ensure_demo_users(portal.node.engine, "lindenhof", datetime.now(UTC))
    assert [role for role, _, _ in people] == ["owner", "installer", "resident", "resident"]
    assert await ensure_demo_users(portal.node.engine, "lindenhof", datetime.now(UTC)) == []
    _, email, password = people[2]
    async with portal.client() as client:
        answer = await sign_in_client(portal, client, email, password)
        assert answer.status_code == 303 and answer.headers["location"] == "/resident"
