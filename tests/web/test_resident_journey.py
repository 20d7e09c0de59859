"""The resident's journey in Chromium: sign in, top up with a voucher, watch a running charge's
cost rise on the overview while a real OCPP station charges; and a resident never reaches
another household's bill or badge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from csms.db.engine import session_factory
from csms.simulator.station import SimStation
from tests.web.conftest import Portal, sign_in_client, signed_in
from wallet.vouchers import create_batch

pytestmark = pytest.mark.browser


async def voucher(portal: Portal, value: str = "25.00") -> str:
    async with session_factory(portal.node.engine)() as db:
        batch = await create_batch(db, site_id="lindenhof", value=value, count=1,
                                   expires_at=datetime.now(UTC) + timedelta(days=30),
                                   key=f"test:{datetime.now(UTC).timestamp()}",
                                   at=datetime.now(UTC))
        await db.commit()
    assert batch.codes is not None
    return batch.codes[0]


async def test_resident_tops_up_and_sees_a_running_charge_cost_rise(
    portal: Portal, page: Any,
) -> None:
    await signed_in(page, portal, "resident", account="a-01")
    before = await page.locator("#balance").inner_text()
    code = await voucher(portal)
    await page.goto(portal.url + "/resident/topup")
    await page.fill("#f-code", code)
    await page.click("button[type=submit].primary")
    done = await page.locator("#topup-done").inner_text()
    assert "25,00" in done
    await page.goto(portal.url + "/resident")
    assert await page.locator("#balance").inner_text() != before

    station = SimStation(portal.ocpp_url, "WB-A-01", password="demo-password-A01")
    async with station:
        assert await station.boot() == "Accepted"
        station.compress_time(3600, 0.001)
        session = await station.start("04A2B3C4")
        await station.wait(600, 0.001)
        await station.meter(session, 11_000, 600)
        await page.goto(portal.url + "/resident")
        cost = page.locator(".running-cost").first
        first = await cost.inner_text()
        # The car keeps charging; live.js refreshes the figure without a reload.
        for _ in range(3):
            await station.wait(600, 0.001)
            await station.meter(session, 11_000, 600)
        async with asyncio.timeout(15):
            while (await cost.inner_text()) == first:
                await asyncio.sleep(0.3)
        later = await cost.inner_text()
        assert _euros(later) > _euros(first) > 0
        await station.stop(session)


def _euros(text: str) -> Decimal:
    return Decimal(text.replace("\u00a0€", "").replace("\u202f", "").replace(",", ".")
                   .replace("€", "").strip())


async def test_a_resident_sees_only_their_household(portal: Portal) -> None:
    email, password = await portal.user("resident", account="a-02")
    station = SimStation(portal.ocpp_url, "WB-A-01", password="demo-password-A01")
    async with station:
        await station.boot()
        session = await station.start("04A2B3C4")  # Keller's badge: household a-01
        await station.stop(session)
    from sqlmodel import select

    from billing.models import PaidUse

    async with session_factory(portal.node.engine)() as db:
        keller_use = (await db.exec(select(PaidUse))).first()
    assert keller_use is not None and keller_use.id is not None
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        bill = await client.get(f"/resident/bills/{keller_use.id}")
        assert bill.status_code == 404
        from tests.web.conftest import csrf_of

        page = await client.get("/resident/badges")
        lost = await client.post("/resident/badges/04A2B3C4/lost",
                                 data={"csrf": csrf_of(page.text)})
        assert lost.status_code == 404
        assert "04A2B3C4" not in page.text
        staff = await client.get("/owner")
        assert staff.status_code in (403, 404)


async def test_reporting_a_badge_lost_blocks_it(portal: Portal) -> None:
    email, password = await portal.user("resident", account="a-01")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        from tests.web.conftest import csrf_of

        page = await client.get("/resident/badges")
        assert "04A2B3C4" in page.text
        answer = await client.post("/resident/badges/04A2B3C4/lost",
                                   data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303
        after = await client.get("/resident/badges")
        assert "verloren" in after.text
    station = SimStation(portal.ocpp_url, "WB-A-01", password="demo-password-A01")
    async with station:
        await station.boot()
        assert await station.authorize("04A2B3C4") != "Accepted"
