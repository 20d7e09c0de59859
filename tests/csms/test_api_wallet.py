"""Wallet routes over a real socket: amounts as decimal strings, roles and account scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Api
from tests.csms.problems import problem as read_problem
from tests.csms.problems import problem_lines

SITE = """
site: {id: lindenhof, name: Lindenhof, timezone: Europe/Berlin, currency: EUR, country: DE}
accounts:
  - {id: a-01, name: Keller, opening_balance: "20.00"}
  - {id: a-02, name: Huber}
"""
OTHER = """
site: {id: seeblick, name: Seeblick, timezone: Europe/Berlin, currency: EUR, country: DE}
accounts: [{id: s-01, name: Meier}]
"""


@pytest.fixture
async def site(api: Api) -> Api:
    admin = await api.admin()
    for document in (SITE, OTHER):
        response = await api.client.post("/api/v1/sites/import", content=document, headers=admin)
        assert response.status_code == 200, response.text
    return api


async def test_wallet_topup_and_ledger(site: Api) -> None:
    api = site
    owner = await api.token("owner", site="lindenhof")
    keller = await api.token("resident", site="lindenhof", account="a-01")
    wallet = await api.client.get("/api/v1/accounts/a-01/wallet", headers=keller)
    assert wallet.status_code == 200, wallet.text
    assert wallet.json() == {
        "currency": "EUR", "balance": "20.00", "available": "20.00", "holds": "0.00",
        "credit": "0.00", "emergency_credit_active": False,
        "emergency_credit_available": False, "mode": "prepaid",
    }
    body = {"amount": "15.50", "reference": "Q-2026-0001"}
    first = await api.client.post("/api/v1/accounts/a-01/topups", headers=owner, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["balance"] == "35.50" and first.json()["replayed"] is False
    again = await api.client.post("/api/v1/accounts/a-01/topups", headers=owner, json=body)
    assert again.status_code == 200 and again.json()["replayed"] is True
    wallet = await api.client.get("/api/v1/accounts/a-01/wallet", headers=owner)
    assert wallet.json()["balance"] == "35.50"

    ledger = await api.client.get("/api/v1/accounts/a-01/ledger", headers=keller,
                                  params={"limit": 1})
    assert ledger.status_code == 200
    page = ledger.json()
    assert [(line["kind"], line["amount"]) for line in page["lines"]] == [("topup", "15.50")]
    older = await api.client.get("/api/v1/accounts/a-01/ledger", headers=keller,
                                 params={"limit": 1, "before": page["next_before"]})
    assert [(line["kind"], line["amount"]) for line in older.json()["lines"]] == [
        ("opening", "20.00")]
    assert older.json()["next_before"] is None


async def test_residents_reach_only_their_own_account(site: Api) -> None:
    api = site
    keller = await api.token("resident", site="lindenhof", account="a-01")
    for method, path in (("GET", "/api/v1/accounts/a-02/wallet"),
                         ("GET", "/api/v1/accounts/a-02/ledger"),
                         ("POST", "/api/v1/accounts/a-02/emergency-credit")):
        response = await api.client.request(method, path, headers=keller)
        assert response.status_code == 403, (path, response.text)
    topup = await api.client.post("/api/v1/accounts/a-01/topups", headers=keller,
                                  json={"amount": "100.00", "reference": "self"})
    assert topup.status_code == 403
    policy = await api.client.get("/api/v1/accounts/a-01/credit-policy", headers=keller)
    assert policy.status_code == 403
    # another site's owner does not learn that lindenhof has an a-01: the 404 of an account
    # that exists nowhere
    other_owner = await api.token("owner", site="seeblick")
    elsewhere = await api.client.get("/api/v1/accounts/a-01/wallet", headers=other_owner)
    nowhere = await api.client.get("/api/v1/accounts/a-99/wallet", headers=other_owner)
    assert (elsewhere.status_code, nowhere.status_code) == (404, 404)
    assert (read_problem(elsewhere)["detail"]
            == read_problem(nowhere)["detail"].replace("a-99", "a-01"))
    assert "lindenhof" not in elsewhere.text
    assert (await api.client.get("/api/v1/accounts/a-01/wallet")).status_code == 401
    admin = await api.admin()
    assert (await api.client.get("/api/v1/accounts/nope/wallet",
                                 headers=admin)).status_code == 404


async def test_bad_topups_name_the_field_and_change_nothing(site: Api) -> None:
    api = site
    owner = await api.token("owner", site="lindenhof")
    for body, problem in (({"amount": 10.5, "reference": "R"}, "amount: must be a decimal"),
                          ({"amount": "-3", "reference": "R"}, "amount: must be greater"),
                          ({"amount": "1.00001", "reference": "R"}, "amount: 1.00001 has more"),
                          ({"amount": "5.00", "reference": " "}, "reference: a receipt")):
        response = await api.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                         json=body)
        assert response.status_code == 422, response.text
        assert problem_lines(response)[0].startswith(problem), response.text
    wallet = await api.client.get("/api/v1/accounts/a-01/wallet", headers=owner)
    assert wallet.json()["balance"] == "20.00"


async def test_policy_emergency_credit_and_vouchers(site: Api) -> None:
    api = site
    owner = await api.token("owner", site="lindenhof")
    huber = await api.token("resident", site="lindenhof", account="a-02")
    bad = await api.client.patch("/api/v1/accounts/a-02/credit-policy", headers=owner,
                                 json={"mode": "postpaid", "emergency_credit": 5.5})
    assert bad.status_code == 422
    assert problem_lines(bad) == [
        "mode: must be one of prepaid, free, blocked",
        'emergency_credit: must be a decimal string such as "5.00"']
    document = {"emergency_credit": "10.00", "friendly": {"weekends": True},
                "low_balance_thresholds": ["5.00"]}
    put = await api.client.patch("/api/v1/accounts/a-02/credit-policy", headers=owner,
                                 json=document)
    assert put.status_code == 200, put.text
    got = await api.client.get("/api/v1/accounts/a-02/credit-policy", headers=owner)
    assert got.json()["emergency_credit"] == "10.00" and got.json()["friendly"]["weekends"]

    emergency = await api.client.post("/api/v1/accounts/a-02/emergency-credit", headers=huber)
    assert emergency.status_code == 200, emergency.text
    assert (emergency.json()["credit"], emergency.json()["available"]) == ("10.00", "10.00")

    expires = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    batch = await api.client.post("/api/v1/vouchers/batches", headers=owner, json={
        "value": "25.00", "count": 3, "expires_at": expires, "reference": "spring"})
    assert batch.status_code == 201, batch.text
    codes = batch.json()["codes"]
    assert len(codes) == 3
    replay = await api.client.post("/api/v1/vouchers/batches", headers=owner, json={
        "value": "25.00", "count": 3, "expires_at": expires, "reference": "spring"})
    assert replay.status_code == 200 and replay.json()["codes"] is None
    assert (await api.client.post("/api/v1/vouchers/batches", headers=huber, json={
        "value": "25.00", "count": 3, "expires_at": expires})).status_code == 403

    redeemed = await api.client.post("/api/v1/vouchers/redeem", headers=huber,
                                     json={"code": codes[0]})
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["wallet"]["balance"] == "25.00"
    # Emergency credit (none used) ends with the top-up.
    assert redeemed.json()["wallet"]["emergency_credit_active"] is False
    again = await api.client.post("/api/v1/vouchers/redeem", headers=huber,
                                  json={"code": codes[0]})
    assert again.status_code == 200 and again.json()["status"] == "replayed"
    typo = codes[1][:-1] + str((int(codes[1][-1]) + 1) % 10)
    for attempt in range(5):
        wrong = await api.client.post("/api/v1/vouchers/redeem", headers=huber,
                                      json={"code": typo})
        assert wrong.status_code == 422 and wrong.json()["failures"] == attempt + 1
    locked = await api.client.post("/api/v1/vouchers/redeem", headers=huber,
                                   json={"code": codes[1]})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
