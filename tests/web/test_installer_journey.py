"""The installer's journey in Chromium: add a wallbox, see its credentials once (not again on
reload), and a real OCPP client connects with them; the station's page shows it connected and
its last messages. Bulk CSV import reports row by row, and twice changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from csms.db.engine import session_factory
from csms.inventory.models import Station
from csms.simulator.station import SimStation
from rfid.models import Badge
from tests.web.conftest import Portal, csrf_of, sign_in_client, signed_in

pytestmark = pytest.mark.browser


async def test_installer_adds_a_wallbox_and_sees_its_credentials_once(
    portal: Portal, page: Any,
) -> None:
    await signed_in(page, portal, "installer")
    await page.goto(portal.url + "/installer/stations/new")
    await page.fill("#f-id", "WB-NEW-01")
    await page.select_option("#f-protocol", "ocpp2.0.1")
    await page.select_option("#f-tariff", "wallbox")
    await page.click("button[type=submit].primary")
    password = (await page.locator("#station-password").inner_text()).strip()
    assert len(password) >= 16
    # Reloading the station's page never shows it again, nor does the HTML hold it.
    await page.goto(portal.url + "/installer/stations/WB-NEW-01")
    assert password not in await page.content()
    async with session_factory(portal.node.engine)() as db:
        stored = await db.get(Station, "WB-NEW-01")
        assert stored is not None and password not in str(stored.model_dump())

    station = SimStation(portal.ocpp_url, "WB-NEW-01", protocol="ocpp2.0.1", password=password)
    async with station:
        assert await station.boot() == "Accepted"
        await station.heartbeat()
        await page.goto(portal.url + "/installer/stations/WB-NEW-01")
        text = await page.content()
        assert "verbunden" in text and "Heartbeat" in text
    wrong = SimStation(portal.ocpp_url, "WB-NEW-01", protocol="ocpp2.0.1",
                       password="x" * 24)
    with pytest.raises(Exception):  # noqa: B017 - the handshake is refused (401)
        await wrong.connect()


async def test_csv_import_reports_every_row_and_twice_changes_nothing(portal: Portal) -> None:
    email, password = await portal.user("installer")
    text = ("uid,account,label\n"
            "04AA0001,a-01,Keller 3\n"
            "zz,a-01,broken\n"
            "04AA0002,a-99,nobody\n"
            "04AA0003,a-02,Yilmaz 2\n")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        page = await client.get("/installer/import")
        first = await client.post("/installer/import", data={
            "csrf": csrf_of(page.text), "kind": "badges", "text": text})
        assert first.status_code == 200
        assert "2 übernommen, 2 abgelehnt" in first.text
        assert "unknown account &#39;a-99&#39;" in first.text
        again = await client.post("/installer/import", data={
            "csrf": csrf_of(page.text), "kind": "badges", "text": text})
        assert "2 übernommen, 2 abgelehnt" in again.text
        header = await client.post("/installer/import", data={
            "csrf": csrf_of(page.text), "kind": "badges", "text": "card,who\n1,2\n"})
        assert header.status_code == 422 and "column &#39;uid&#39; is missing" in header.text
    async with session_factory(portal.node.engine)() as db:
        uids = {b.uid for b in (await db.exec(select(Badge))).all()}
    assert {"04AA0001", "04AA0003"} <= uids and "04AA0002" not in uids
