"""A site's resources one by one over the API, through the same services as the site file and
the pages: tariffs published as versions, stations created with credentials returned once,
accounts, users invited with a one-time link; scoped to the caller's site and role."""

from __future__ import annotations

from pathlib import Path

from csms.inventory.sitefile import import_site_file
from csms.simulator.station import SimStation
from tests.conftest import Api

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


async def test_tariffs_stations_accounts_and_users(api: Api) -> None:
    await import_site_file(api.node.engine, DEMO)
    owner = await api.token("owner", site="lindenhof")
    installer = await api.token("installer", site="lindenhof")

    tariffs = (await api.client.get("/api/v1/sites/lindenhof/tariffs", headers=owner)).json()
    laundry = next(t for t in tariffs if t["id"] == "laundry")
    assert laundry["version"] == 1
    doc = {**laundry["document"], "components": [{"dimension": "flat", "price": "2.20"}]}
    put = await api.client.put("/api/v1/sites/lindenhof/tariffs/laundry", headers=owner,
                               json=doc)
    assert put.status_code == 200 and put.json()["version"] == 2
    same = await api.client.put("/api/v1/sites/lindenhof/tariffs/laundry", headers=owner,
                                json=doc)
    assert same.json()["version"] == 2  # unchanged: no new version
    bad = await api.client.put("/api/v1/sites/lindenhof/tariffs/laundry", headers=owner,
                               json={**doc, "vat_percent": "-3"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["path"] == "vat_percent"
    versions = (await api.client.get("/api/v1/sites/lindenhof/tariffs/laundry/versions",
                                     headers=owner)).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert (await api.client.delete("/api/v1/sites/lindenhof/tariffs/wallbox",
                                    headers=owner)).status_code == 409  # stations use it
    refused = await api.client.put("/api/v1/sites/lindenhof/tariffs/laundry",
                                   headers=installer, json=doc)
    assert refused.status_code == 403

    made = await api.client.post("/api/v1/sites/lindenhof/stations", headers=installer, json={
        "id": "WB-API-1", "protocol": "ocpp1.6", "tariff": "wallbox"})
    assert made.status_code == 201, made.text
    password = made.json()["password"]
    assert len(password) >= 16
    listed = (await api.client.get("/api/v1/sites/lindenhof/stations", headers=owner)).json()
    assert "password" not in str(listed) or password not in str(listed)
    async with SimStation(api.node.ocpp_url, "WB-API-1", password=password) as station:
        assert await station.boot() == "Accepted"
    twice = await api.client.post("/api/v1/sites/lindenhof/stations", headers=installer, json={
        "id": "WB-API-1", "protocol": "ocpp1.6", "tariff": "wallbox"})
    assert twice.status_code == 409
    wrong = await api.client.post("/api/v1/sites/lindenhof/stations", headers=installer, json={
        "id": "WB-API-2", "protocol": "ocpp9", "tariff": "nope"})
    assert wrong.status_code == 422

    account = await api.client.post("/api/v1/sites/lindenhof/accounts", headers=owner,
                                    json={"id": "c-01", "name": "Familie Neu"})
    assert account.status_code == 201
    invited = await api.client.post("/api/v1/sites/lindenhof/users", headers=installer, json={
        "email": "neu@example.org", "role": "resident", "account": "c-01"})
    assert invited.status_code == 201 and "/set-password/" in invited.json()["link"]
    no_owner = await api.client.post("/api/v1/sites/lindenhof/users", headers=installer, json={
        "email": "boss@example.org", "role": "owner"})
    assert no_owner.status_code == 403
    users = (await api.client.get("/api/v1/sites/lindenhof/users", headers=owner)).json()
    assert users == [{"email": "neu@example.org", "role": "resident", "language": "de",
                      "state": "invited"}]
    gone = await api.client.delete("/api/v1/sites/lindenhof/users/neu@example.org",
                                   headers=owner)
    assert gone.status_code == 204
    foreign = await api.token("owner", site="lindenhof")
    assert (await api.client.get("/api/v1/sites/nowhere/stations",
                                 headers=foreign)).status_code == 403


async def test_one_entry_at_a_time_as_the_site_file_writes_it(api: Api) -> None:
    await import_site_file(api.node.engine, DEMO)
    installer = await api.token("installer", site="lindenhof")
    base = "/api/v1/sites/lindenhof"
    reader = await api.client.put(f"{base}/readers/reader-api", headers=installer,
                                  json={"building": "A"})
    assert reader.status_code == 201, reader.text
    machine = await api.client.put(f"{base}/amenities/washer-api", headers=installer, json={
        "kind": "washer", "tariff": "laundry", "reader": "reader-api",
        "relay": {"driver": "shelly-gen2", "host": "192.0.2.50"}})
    assert machine.status_code == 201, machine.text
    unknown = await api.client.put(f"{base}/amenities/washer-x", headers=installer, json={
        "kind": "washer", "tariff": "nope", "relay": {"driver": "no-such"}})
    assert unknown.status_code == 422
    meter = await api.client.put(f"{base}/meters/m-api", headers=installer, json={
        "account": "a-01", "profile": "eastron-sdm630",
        "modbus": {"host": "192.0.2.60"}, "tariff": "household"})
    assert meter.status_code == 201, meter.text
    again = await api.client.put(f"{base}/meters/m-api", headers=installer, json={
        "account": "a-01", "profile": "eastron-sdm630",
        "modbus": {"host": "192.0.2.61"}, "tariff": "household"})
    assert again.status_code == 200
    machines = (await api.client.get(f"{base}/amenities", headers=installer)).json()
    assert any(m["id"] == "washer-api" for m in machines)

    # A station updated without a password keeps its credentials.
    changed = await api.client.put(f"{base}/stations/WB-A-01", headers=installer, json={
        "protocol": "ocpp1.6", "security_profile": 1, "connectors": 2, "tariff": "wallbox"})
    assert changed.status_code == 200, changed.text
    async with SimStation(api.node.ocpp_url, "WB-A-01", password="demo-password-A01") as s:
        assert await s.boot() == "Accepted"
        session = await s.start("04A2B3C4")
        await s.stop(session)
    kept = await api.client.delete(f"{base}/stations/WB-A-01", headers=installer)
    assert kept.status_code == 409  # it has a session: history stays
    assert (await api.client.delete(f"{base}/amenities/washer-api",
                                    headers=installer)).status_code == 204
    assert (await api.client.delete(f"{base}/readers/reader-api",
                                    headers=installer)).status_code == 204
    assert (await api.client.delete(f"{base}/readers/reader-api",
                                    headers=installer)).status_code == 404


async def test_accounts_and_people_are_updated_and_removed_one_by_one(api: Api) -> None:
    await import_site_file(api.node.engine, DEMO)
    owner = await api.token("owner", site="lindenhof")
    installer = await api.token("installer", site="lindenhof")
    base = "/api/v1/sites/lindenhof"

    made = await api.client.put(f"{base}/accounts/c-07", headers=owner,
                                json={"name": "Familie Sieben", "language": "en"})
    assert made.status_code == 201 and made.json()["created"] is True
    changed = await api.client.put(f"{base}/accounts/c-07", headers=owner, json={
        "name": "Familie Sieben-Acht", "building": "A", "email": "sieben@example.org"})
    assert changed.status_code == 200 and changed.json()["created"] is False
    listed = {a["id"]: a for a in (await api.client.get(f"{base}/accounts",
                                                        headers=owner)).json()}
    assert listed["c-07"]["name"] == "Familie Sieben-Acht"
    assert listed["c-07"]["building"] == "A" and listed["c-07"]["language"] == "de"
    bad = await api.client.put(f"{base}/accounts/c-07", headers=owner,
                               json={"name": "X", "building": "nowhere"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["path"] == "building"
    assert (await api.client.put(f"{base}/accounts/c-07", headers=owner,
                                 json={"id": "c-99", "name": "X"})).status_code == 422
    assert (await api.client.put(f"{base}/accounts/c-07", headers=installer,
                                 json={"name": "X"})).status_code == 403

    # A person's role, household and language; a household with a person stays.
    invited = await api.client.post(f"{base}/users", headers=owner, json={
        "email": "sieben@example.org", "role": "resident", "account": "c-07"})
    assert invited.status_code == 201
    kept = await api.client.delete(f"{base}/accounts/c-07", headers=owner)
    assert kept.status_code == 409 and "people who sign in" in kept.json()["detail"]
    moved = await api.client.patch(f"{base}/users/sieben@example.org", headers=owner,
                                   json={"account": "a-02", "language": "en"})
    assert moved.status_code == 200 and moved.json()["language"] == "en"
    refused = await api.client.patch(f"{base}/users/sieben@example.org", headers=owner,
                                     json={"role": "installer", "account": "a-01"})
    assert refused.status_code == 422
    assert (await api.client.patch(f"{base}/users/sieben@example.org", headers=owner,
                                   json={"role": "admin"})).status_code == 422
    staff = await api.client.patch(f"{base}/users/sieben@example.org", headers=owner,
                                   json={"role": "installer"})
    assert staff.status_code == 200 and staff.json()["role"] == "installer"
    assert (await api.client.patch(f"{base}/users/nobody@example.org", headers=owner,
                                   json={"language": "de"})).status_code == 404
    users = {u["email"]: u for u in (await api.client.get(f"{base}/users",
                                                          headers=owner)).json()}
    assert users["sieben@example.org"]["language"] == "en"
    assert users["sieben@example.org"]["role"] == "installer"

    gone = await api.client.delete(f"{base}/accounts/c-07", headers=owner)
    assert gone.status_code == 204
    assert (await api.client.delete(f"{base}/accounts/c-07",
                                    headers=owner)).status_code == 404
    # A household whose wallet moved money stays, and says why.
    history = await api.client.delete(f"{base}/accounts/a-01", headers=owner)
    assert history.status_code == 409 and "money movements" in history.json()["detail"]
