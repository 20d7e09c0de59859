"""The meter API of devices.md on a running node: the exact shapes, paging, the owners' site
list, exchanges recorded by installers, and who may see what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from csms.db.engine import session_factory
from meters.models import Meter
from meters.readings import record_failure, set_supply, store_reading
from tests.conftest import Api
from tests.csms.problems import problem, problem_lines
from tests.meters.meter_site import add_site, meter_entry, site_document, values

T0 = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def site(api: Api) -> Api:
    engine = api.node.engine
    await add_site(engine, site_document("s1", [
        meter_entry("m-1", "a-01", 502, 1), meter_entry("m-2", "a-02", 502, 2),
    ]))
    await add_site(engine, site_document("s2", [meter_entry("m-9", "b-01", 502, 1)],
                                         accounts=("b-01",)))
    async with session_factory(engine)() as db:
        meters = {m.id: m for m in (await db.exec(select(Meter).order_by(col(Meter.id)))).all()}
        await store_reading(db, meters["m-1"], T0, values(1_000_000, "1500"))
        await store_reading(db, meters["m-1"], minute(1), values(1_000_250, "1490.6"))
        await store_reading(db, meters["m-1"], minute(2), values(400, "12"))  # backwards
        await record_failure(db, "m-2", "no answer within 2 s", minute(3))
        await set_supply(db, "m-2", "off", minute(2))
        await db.commit()
    return api


async def test_a_meter_as_the_contract_shows_it(site: Api) -> None:
    admin = await site.admin()
    answer = await site.client.get("/api/v1/meters/m-1", headers=admin)
    assert answer.status_code == 200
    assert answer.json() == {
        "id": "m-1", "account": "a-01", "supply": "on",
        "last_reading": {"at": stamp(minute(2)), "energy_import_wh": 400, "power_w": 12},
        "flags": ["counter_backwards"],
    }
    never_read = (await site.client.get("/api/v1/meters/m-2", headers=admin)).json()
    assert never_read == {"id": "m-2", "account": "a-02", "supply": "off",
                          "last_reading": None, "flags": ["unreachable"]}


async def test_readings_newest_first_in_pages(site: Api) -> None:
    admin = await site.admin()
    answer = await site.client.get("/api/v1/meters/m-1/readings", headers=admin)
    assert answer.json() == [
        {"at": stamp(minute(2)), "energy_import_wh": 400, "power_w": 12,
         "flags": ["counter_backwards"]},
        {"at": stamp(minute(1)), "energy_import_wh": 1_000_250, "power_w": 1491, "flags": []},
        {"at": stamp(T0), "energy_import_wh": 1_000_000, "power_w": 1500, "flags": []},
    ]
    page = await site.client.get("/api/v1/meters/m-1/readings", headers=admin,
                                 params={"limit": 1, "before": stamp(minute(2))})
    assert [r["at"] for r in page.json()] == [stamp(minute(1))]
    bad = await site.client.get("/api/v1/meters/m-1/readings", headers=admin,
                                params={"limit": 0, "before": "2026-12-02T12:00:00"})
    assert bad.status_code == 422
    assert [line.split(":")[0] for line in problem_lines(bad)] == ["query.limit", "query.before"]


async def test_owners_see_every_meter_of_their_site(site: Api) -> None:
    owner = await site.token("owner", site="s1")
    answer = await site.client.get("/api/v1/sites/s1/meters", headers=owner)
    assert answer.status_code == 200
    listed = {m["id"]: m for m in answer.json()}
    assert sorted(listed) == ["m-1", "m-2"]
    m1, m2 = listed["m-1"], listed["m-2"]
    assert m1["last_reading"] == {"at": stamp(minute(2)), "energy_import_wh": 400,
                                  "power_w": 12}
    assert m1["last_billable_at"] == stamp(minute(1)) and m1["failures"] == 0
    assert m1["profile"] == "eastron-sdm630"
    assert (m2["supply"], m2["failures"], m2["flags"]) == ("off", 1, ["unreachable"])
    assert m2["last_failure"] == "no answer within 2 s"
    assert m2["backed_off_until"] == stamp(minute(3))
    other = await site.client.get("/api/v1/sites/s2/meters", headers=owner)
    assert other.status_code == 403
    resident = await site.token("resident", site="s1", account="a-01")
    assert (await site.client.get("/api/v1/sites/s1/meters", headers=resident)).status_code \
        == 403
    admin = await site.admin()
    assert (await site.client.get("/api/v1/sites/nowhere/meters", headers=admin)).status_code \
        == 404


@pytest.mark.parametrize("path", ["/api/v1/meters/{id}", "/api/v1/meters/{id}/readings"])
async def test_who_may_see_a_meter(site: Api, path: str) -> None:
    async def status(meter: str, headers: dict[str, str]) -> int:
        answer = await site.client.get(path.format(id=meter), headers=headers)
        if answer.status_code != 200:
            problem(answer)
        return answer.status_code

    household = await site.token("resident", site="s1", account="a-01")
    neighbour = await site.token("resident", site="s1", account="a-02")
    assert await status("m-1", household) == 200
    assert await status("m-1", neighbour) == 403
    assert await status("m-2", neighbour) == 200
    for role in ("owner", "installer"):
        assert await status("m-1", await site.token(role, site="s1")) == 200
        assert await status("m-9", await site.token(role, site="s1")) == 403  # another site
    assert await status("m-9", household) == 403
    assert await status("m-404", household) == 404
    assert await status("m-1", {}) == 401


async def test_an_installer_records_an_exchange(site: Api) -> None:
    installer = await site.token("installer", site="s1")
    body: dict[str, Any] = {"at": stamp(minute(1.5)), "old_final_wh": 1_000_300,
                            "new_initial_wh": 0}
    owner = await site.token("owner", site="s1")
    assert (await site.client.post("/api/v1/meters/m-1/exchanges", json=body,
                                   headers=owner)).status_code == 403
    other = await site.token("installer", site="s2")
    assert (await site.client.post("/api/v1/meters/m-1/exchanges", json=body,
                                   headers=other)).status_code == 403

    refused = await site.client.post(
        "/api/v1/meters/m-1/exchanges", headers=installer,
        json=body | {"at": stamp(minute(0.5)), "old_final_wh": 5})
    assert refused.status_code == 422
    assert problem_lines(refused) == [
        f"body.at: is before the last billed reading at {minute(1).isoformat()}: an exchange "
        "ends the readings before it",
    ]
    naive = await site.client.post("/api/v1/meters/m-1/exchanges", headers=installer,
                                   json=body | {"at": "2026-12-02T12:00:00", "extra": 1})
    assert naive.status_code == 422
    assert sorted(line.split(":")[0] for line in problem_lines(naive)) == ["body.at",
                                                                          "body.extra"]
    low = await site.client.post("/api/v1/meters/m-1/exchanges", headers=installer,
                                 json=body | {"old_final_wh": 1_000_000})
    assert problem_lines(low) == [
        "body.old_final_wh: 1000000 Wh is below the old meter's last billed reading, "
        "1000250 Wh"]

    recorded = await site.client.post("/api/v1/meters/m-1/exchanges", json=body,
                                      headers=installer)
    assert recorded.status_code == 201, recorded.text
    answer = recorded.json()
    assert answer["offset_wh"] == 1_000_300 and answer["meter_id"] == "m-1"
    assert answer["recorded_by"].startswith("installer:")
    # the backwards flag the new meter's register raised is cleared
    admin = await site.admin()
    assert (await site.client.get("/api/v1/meters/m-1", headers=admin)).json()["flags"] == []
    # billing continues across it
    async with session_factory(site.node.engine)() as db:
        meter = await db.get(Meter, "m-1")
        assert meter is not None
        stored = await store_reading(db, meter, minute(3), values(500))
        await db.commit()
    assert stored.billable and stored.energy_wh == 1_000_800
    assert stored.previous_billable == (minute(1), 1_000_250)
