"""The owner's journey in Chromium: edit a tier of the wallbox tariff, see the preview (examples
and curve) change before anything is published, publish a new version; a session that started
before keeps the price it started with. And the editor refuses what the contract refuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from billing.models import PaidUse
from csms.db.engine import session_factory
from csms.inventory.models import Tariff, TariffVersion
from csms.simulator.station import SimStation
from tests.web.conftest import Portal, csrf_of, sign_in_client, signed_in

pytestmark = pytest.mark.browser


async def test_owner_edits_a_tier_previews_and_publishes(portal: Portal, page: Any) -> None:
    station = SimStation(portal.ocpp_url, "WB-A-01", password="demo-password-A01")
    async with station:
        assert await station.boot() == "Accepted"
        early = await station.start("04A2B3C4")  # starts on version 1: 0.39 per kWh

        await signed_in(page, portal, "owner")
        await page.goto(portal.url + "/owner/tariffs/wallbox")
        hour_before = await page.locator("#examples tbody tr").nth(2).inner_text()
        curve_before = await page.locator("#chart-kwh polyline").get_attribute("points")
        await page.fill("#f-c0_t0_price", "0.49")
        await page.click("#preview")
        await page.wait_for_selector("#preview-result")
        hour_after = await page.locator("#examples tbody tr").nth(2).inner_text()
        curve_after = await page.locator("#chart-kwh polyline").get_attribute("points")
        assert hour_after != hour_before and curve_after != curve_before
        async with session_factory(portal.node.engine)() as db:
            row = await db.get(Tariff, ("lindenhof", "wallbox"))
            assert row is not None
            assert row.document["components"][0]["tiers"][0]["price"] == "0.39"  # not yet
        await page.click("#publish")
        await page.wait_for_selector("#published")
        assert "2" in await page.locator("#published").inner_text()

        await station.meter(early, 3_600, 1)
        await station.stop(early)
    async with session_factory(portal.node.engine)() as db:
        row = await db.get(Tariff, ("lindenhof", "wallbox"))
        assert row is not None and row.document["components"][0]["tiers"][0]["price"] == "0.49"
        versions = (await db.exec(select(TariffVersion).where(
            col(TariffVersion.tariff_id) == "wallbox"))).all()
        assert sorted(v.version for v in versions) == [1, 2]
        use = (await db.exec(select(PaidUse).where(col(PaidUse.device_id) == "WB-A-01"))).one()
        assert use.tariff["components"][0]["tiers"][0]["price"] == "0.39"


async def test_the_editor_refuses_what_the_contract_refuses_and_changes_nothing(
    portal: Portal,
) -> None:
    email, password = await portal.user("owner")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        page = await client.get("/owner/tariffs/wallbox")
        bad = await client.post("/owner/tariffs/wallbox", data={
            "csrf": csrf_of(page.text), "c0_t0_price": "-1", "action": "publish"})
        assert bad.status_code == 422
        assert "components[0].tiers[0].price" in bad.text
        assert 'id="f-c0_t0_price"' in bad.text and 'aria-invalid="true"' in bad.text
        steps = await client.post("/owner/tariffs/wallbox", data={
            "csrf": csrf_of(page.text), "c0_step": "zehn", "action": "publish"})
        assert steps.status_code == 422
    async with session_factory(portal.node.engine)() as db:
        versions = (await db.exec(select(TariffVersion).where(
            col(TariffVersion.tariff_id) == "wallbox"))).all()
        assert [v.version for v in versions] == [1]


async def test_desk_top_up_prints_a_receipt_once_per_receipt_number(portal: Portal) -> None:
    email, password = await portal.user("owner")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        page = await client.get("/owner/accounts")
        form = {"csrf": csrf_of(page.text), "amount": "20.00", "receipt": "Q-0001"}
        first = await client.post("/owner/accounts/a-01/topup", data=form)
        assert first.status_code == 200 and "Q-0001" in first.text
        again = await client.post("/owner/accounts/a-01/topup", data=form)
        assert "nichts wurde doppelt" in again.text
        bad = await client.post("/owner/accounts/a-01/topup", data={**form, "amount": "10.005",
                                                                  "receipt": "Q-0002"})
        assert bad.status_code == 422
        sheet = await client.post("/owner/vouchers", data={
            "csrf": csrf_of(page.text), "value": "10.00", "count": "3", "days": "30"})
        assert sheet.status_code == 200 and sheet.text.count('class="voucher-code"') == 3
        csv_file = await client.get("/owner/revenue.csv")
        assert csv_file.text.startswith("month,service,uses,net,gross,currency")
    from wallet.service import wallet_view
    async with session_factory(portal.node.engine)() as db:
        from datetime import UTC, datetime

        from wallet.accounts import account_by_ref

        account = await account_by_ref(db, "lindenhof", "a-01")
        assert account is not None
        view = await wallet_view(db, account.id, datetime.now(UTC))
        assert view.balance == Decimal("70.00")  # 50 opening + 20, once
