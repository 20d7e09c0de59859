"""Staff see only their own site; owners set credit rules as the API does (bad input named,
nothing changed)."""

from __future__ import annotations

import html

from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site
from tests.web.conftest import Portal, csrf_of, sign_in_client
from wallet.accounts import account_by_ref
from wallet.service import get_policy


async def test_an_owner_of_another_site_sees_nothing_of_this_one(portal: Portal) -> None:
    await import_site(portal.node.engine, {
        "site": {"id": "nachbar", "name": "Nachbarhaus", "timezone": "Europe/Berlin",
                 "currency": "EUR", "country": "DE"},
        "accounts": [{"id": "n-01", "name": "Familie Nachbar"}]})
    email, password = await portal.user("owner", site="nachbar")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        accounts = await client.get("/owner/accounts")
        assert "Familie Nachbar" in accounts.text and "Familie Keller" not in accounts.text
        assert (await client.get("/owner/tariffs/wallbox")).status_code == 404
        assert (await client.get("/owner/accounts/a-01/statement.pdf")).status_code == 404
        # ?site= is an admin's choice only: an owner stays on their own site.
        other = await client.get("/owner/accounts?site=lindenhof")
        assert "Familie Keller" not in other.text


async def test_owner_sets_credit_rules_and_bad_rules_change_nothing(portal: Portal) -> None:
    email, password = await portal.user("owner")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        page = await client.get("/owner/accounts/a-01/policy")
        assert page.status_code == 200 and "emergency_credit" in page.text
        text = page.text.split('name="policy"', 1)[1].split(">", 1)[1].split("</textarea>")[0]
        document = html.unescape(text).replace("emergency_credit: '0.00'",
                                               "emergency_credit: '10.00'")
        assert "emergency_credit: '10.00'" in document
        saved = await client.post("/owner/accounts/a-01/policy", data={
            "csrf": csrf_of(page.text), "policy": document})
        assert saved.status_code == 303
        bad = await client.post("/owner/accounts/a-01/policy", data={
            "csrf": csrf_of(page.text), "policy": "mode: sometimes\n"})
        assert bad.status_code == 422
    async with session_factory(portal.node.engine)() as db:
        account = await account_by_ref(db, "lindenhof", "a-01")
        assert account is not None
        policy = await get_policy(db, account.id)
        assert str(policy.emergency_credit) == "10.00"
