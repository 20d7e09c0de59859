"""The sessions API over a real socket, on a whole node (`running_node`: billing wired as in
production): list and filter, residents see their own, a staff stop, a month's CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from csms.simulator.station import SimStation
from tests.conftest import Api
from tests.csms.charging.conftest import DEMO, PASSWORDS


async def demo(api: Api) -> None:
    response = await api.client.post("/api/v1/sites/import", content=DEMO.read_text(),
                                     headers=await api.admin())
    assert response.status_code == 200, response.text


async def test_sessions_listed_stopped_and_exported(api: Api) -> None:
    await demo(api)
    url = api.node.ocpp_url
    async with SimStation(url, "WB-A-01", password=PASSWORDS["WB-A-01"]) as a, SimStation(
        url, "WB-B-01", protocol="ocpp2.0.1", password=PASSWORDS["WB-B-01"]
    ) as b:
        assert await a.boot() == "Accepted" and await b.boot() == "Accepted"
        done = await a.charge("04A2B3C4", power_w=11000, duration_s=1800, interval_s=600,
                              time_scale=0.0001)
        # 15 minutes at 7.4 kW on the station's clock (a reading of 1,850 Wh a moment after the
        # start would be more than the wallbox can deliver, and held for review).
        b.compress_time(900, 0.0001)
        stuck = await b.start("B37E09D1")
        await b.wait(900, 0.0001)
        await b.meter(stuck, 7400, 900)

    owner = await api.token("owner", site="lindenhof")
    listed = await api.client.get("/api/v1/sessions", headers=owner)
    assert listed.status_code == 200, listed.text
    by_station = {s["station_id"]: s for s in listed.json()}
    paid = by_station["WB-A-01"]
    assert paid["transaction_id"] == done.transaction_id
    assert paid["status"] == "completed" and paid["energy_wh"] == 5499
    assert paid["account_id"] == "a-01" and paid["authorization"] == "Accepted"
    assert by_station["WB-B-01"]["status"] == "active"

    only_b = await api.client.get("/api/v1/sessions", headers=owner,
                                  params={"station": "WB-B-01"})
    assert [s["station_id"] for s in only_b.json()] == ["WB-B-01"]
    keller = await api.token("resident", site="lindenhof", account="a-01")
    mine = await api.client.get("/api/v1/sessions", headers=keller)
    assert [s["account_id"] for s in mine.json()] == ["a-01"]
    other = await api.client.get("/api/v1/sessions", headers=keller, params={"account": "b-01"})
    assert other.status_code == 403
    hidden = await api.client.get(f"/api/v1/sessions/{by_station['WB-B-01']['id']}",
                                  headers=keller)
    assert hidden.status_code == 404
    detail = await api.client.get(f"/api/v1/sessions/{paid['id']}", headers=keller)
    assert detail.json()["usage"]["samples"][0]["energy_wh"] == 0

    stuck_id = by_station["WB-B-01"]["id"]
    refused = await api.client.post(f"/api/v1/sessions/{stuck_id}/stop", headers=keller)
    assert refused.status_code == 403
    stopped = await api.client.post(f"/api/v1/sessions/{stuck_id}/stop", headers=owner)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "completed"
    assert "closed_by_staff" in stopped.json()["flags"]
    again = await api.client.post(f"/api/v1/sessions/{stuck_id}/stop", headers=owner)
    assert again.status_code == 409

    wallet = await api.client.get("/api/v1/sessions", headers=owner,
                                  params={"account": "b-01", "status": "completed"})
    assert Decimal(wallet.json()[0]["gross"]) == Decimal(stopped.json()["gross"])

    month = datetime.now(UTC).strftime("%Y-%m")
    export = await api.client.get("/api/v1/sessions/export.csv", headers=owner,
                                  params={"month": month})
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert {r["station"] for r in rows} == {"WB-A-01", "WB-B-01"}
    assert Decimal(next(r for r in rows if r["station"] == "WB-A-01")["gross"]) == Decimal(
        paid["gross"])
    bad = await api.client.get("/api/v1/sessions/export.csv", headers=owner,
                               params={"month": "2026-13"})
    assert bad.status_code == 422
