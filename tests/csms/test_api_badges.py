"""Badge routes over a real socket: owner manages the site's badges, residents their own."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.csms.problems import problem as read_problem
from tests.csms.problems import problem_lines

SITE = """
site: {id: lindenhof, name: Lindenhof, timezone: Europe/Berlin, currency: EUR, country: DE}
accounts:
  - {id: a-01, name: Keller}
  - {id: a-02, name: Huber}
"""
OTHER = """
site: {id: seeblick, name: Seeblick, timezone: Europe/Berlin, currency: EUR, country: DE}
accounts: [{id: s-01, name: Meier}]
"""
BASE = "/api/v1/sites/lindenhof/badges"


@pytest.fixture
async def site(api: Api) -> Api:
    admin = await api.admin()
    for document in (SITE, OTHER):
        response = await api.client.post("/api/v1/sites/import", content=document, headers=admin)
        assert response.status_code == 200, response.text
    return api


async def test_owner_registers_and_residents_see_their_own(site: Api) -> None:
    api = site
    owner = await api.token("owner", site="lindenhof")
    created = await api.client.post(BASE, headers=owner, json={
        "uid": "3300106756", "format": "dec-reversed", "account_id": "a-01",
        "label": "Keller 1", "valid_until": "2027-12-31",
    })
    assert created.status_code == 201, created.text
    assert created.json() == {
        "site_id": "lindenhof", "uid": "04A2B3C4", "account_id": "a-01", "label": "Keller 1",
        "status": "active",
        "valid_from": None, "valid_until": "2027-12-31", "origin": "issued", "card_type": None,
        "max_sessions": 1,
    }
    foreign = await api.client.post(BASE, headers=owner, json={
        "uid": "04:91:1a:8a:23:5c:80", "account_id": "a-02", "foreign": True})
    assert foreign.status_code == 201 and foreign.json()["origin"] == "foreign"

    everything = await api.client.get(BASE, headers=owner)
    assert [b["uid"] for b in everything.json()] == ["04A2B3C4", "04911A8A235C80"]

    keller = await api.token("resident", site="lindenhof", account="a-01")
    own = await api.client.get(BASE, headers=keller)
    assert [b["uid"] for b in own.json()] == ["04A2B3C4"]
    peek = await api.client.get(BASE, headers=keller, params={"account": "a-02"})
    assert peek.status_code == 403 and "bound to account 'a-01'" in read_problem(peek)["detail"]
    assert (await api.client.post(BASE, headers=keller, json={
        "uid": "F1E2D3C4", "account_id": "a-01"})).status_code == 403


@pytest.mark.parametrize(("body", "problem"), [
    ({"uid": "04A2B3", "account_id": "a-01"}, "uid: 3 bytes; a MIFARE UID has 4, 7 or 10 bytes"),
    ({"uid": "04A2G3C4", "account_id": "a-01"}, "uid: 'G' (digit 5) is not a hex digit"),
    ({"uid": "04A2B3C4", "format": "octal", "account_id": "a-01"},
     "format: unknown idTag format 'octal'"),
    # another site's account is as unknown here as one that exists nowhere
    ({"uid": "04A2B3C4", "account_id": "s-01"}, "account_id: unknown account 's-01'"),
    ({"uid": "04A2B3C4", "account_id": "nobody"}, "account_id: unknown account 'nobody'"),
])
async def test_bad_input_is_422_and_stores_nothing(
    site: Api, body: dict[str, str], problem: str
) -> None:
    owner = await site.token("owner", site="lindenhof")
    response = await site.client.post(BASE, headers=owner, json=body)
    assert response.status_code == 422
    assert read_problem(response)["detail"] == "invalid input"
    lines = problem_lines(response)
    assert len(lines) == 1 and lines[0].startswith(problem)
    assert (await site.client.get(BASE, headers=owner)).json() == []


async def test_block_and_unblock_rights(site: Api) -> None:
    api = site
    owner = await api.token("owner", site="lindenhof")
    for uid, account in (("04A2B3C4", "a-01"), ("04911A8A235C80", "a-02")):
        response = await api.client.post(BASE, headers=owner, json={"uid": uid,
                                                                     "account_id": account})
        assert response.status_code == 201
    keller = await api.token("resident", site="lindenhof", account="a-01")

    # a resident touching another household's badge
    for action in ("block", "unblock"):
        denied = await api.client.post(f"{BASE}/04911A8A235C80/{action}", headers=keller)
        assert denied.status_code == 403, action
        assert "bound to account 'a-01', not 'a-02'" in read_problem(denied)["detail"]

    # a resident reports their badge lost, finds it again
    lost = await api.client.post(f"{BASE}/04a2b3c4/block", headers=keller, json={"lost": True})
    assert lost.status_code == 200 and lost.json()["status"] == "lost"
    found = await api.client.post(f"{BASE}/04A2B3C4/unblock", headers=keller)
    assert found.status_code == 200 and found.json()["status"] == "active"

    # what the owner blocked, only the owner lifts
    blocked = await api.client.post(f"{BASE}/04A2B3C4/block", headers=owner)
    assert blocked.json()["status"] == "blocked"
    refused = await api.client.post(f"{BASE}/04A2B3C4/unblock", headers=keller)
    assert refused.status_code == 403 and "only the site's owner" in read_problem(refused)["detail"]
    lifted = await api.client.post(f"{BASE}/04A2B3C4/unblock", headers=owner)
    assert lifted.json()["status"] == "active"

    # another site's owner, unknown and malformed badges
    stranger = await api.token("owner", site="seeblick")
    assert (await api.client.post(f"{BASE}/04A2B3C4/block", headers=stranger)).status_code \
        == 403
    assert (await api.client.get(BASE, headers=stranger)).status_code == 403
    missing = await api.client.post(f"{BASE}/DEADBEEF/block", headers=owner)
    assert missing.status_code == 404
    seeblick_owner_view = await api.client.post(
        "/api/v1/sites/seeblick/badges/04A2B3C4/block", headers=stranger)
    assert seeblick_owner_view.status_code == 404
    malformed = await api.client.post(f"{BASE}/04A2B3/block", headers=owner)
    assert malformed.status_code == 422
    assert (await api.client.post(f"{BASE}/04A2B3C4/block")).status_code == 401
