"""The monthly statement PDF: the month's uses and payments with their totals, readable back as
text; an owner gets any household's, a resident only their own."""

from __future__ import annotations

import io

from pypdf import PdfReader

from csms.simulator.station import SimStation
from tests.web.conftest import Portal, csrf_of, sign_in_client


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


async def test_statement_lists_the_month_and_its_totals(portal: Portal) -> None:
    station = SimStation(portal.ocpp_url, "WB-A-01", password="demo-password-A01")
    async with station:
        await station.boot()
        station.compress_time(3600, 0.001)
        session = await station.start("04A2B3C4")
        await station.wait(3600, 0.001)
        await station.meter(session, 11_000, 3600)
        await station.stop(session)
    email, password = await portal.user("owner")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        page = await client.get("/owner/accounts")
        await client.post("/owner/accounts/a-01/topup", data={
            "csrf": csrf_of(page.text), "amount": "15.00", "receipt": "S-1"})
        answer = await client.get("/owner/accounts/a-01/statement.pdf")
        assert answer.headers["content-type"] == "application/pdf"
        text = pdf_text(answer.content)
        assert "Familie Keller (a-01)" in text
        assert "WB-A-01 11,000" in text  # the month's charge: 11 kWh
        assert "topup cash top-up, receipt S-1 15,00 EUR" in text
        assert "Eingezahlt in diesem Monat: 65,00 EUR" in text  # opening 50 + desk 15
        assert (await client.get("/owner/accounts/a-01/statement.pdf?month=2026-13")
                ).status_code == 404
    email, password = await portal.user("resident", account="a-02")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        own = pdf_text((await client.get("/resident/statement.pdf")).content)
        assert "(a-02)" in own and "WB-A-01" not in own
        assert (await client.get("/owner/accounts/a-01/statement.pdf")).status_code == 403
