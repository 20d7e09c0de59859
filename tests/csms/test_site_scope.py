"""Accounts and badges are scoped to their site (issue 11, point 5): two sites may both have an
account `a-01` and a badge with the same UID; each is found only through its own site, and no
answer to a site-bound caller reveals the other site's."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.inventory.sitefile import SiteFileError, export_site, import_site
from rfid.models import Badge
from rfid.registry import block_badge, lookup
from tests.conftest import Api
from tests.csms.problems import problem
from tests.csms.test_sitefile import snapshot
from wallet.accounts import account_by_ref
from wallet.models import Account
from wallet.service import wallet_view

UID = "04A2B3C4"


def site_document(site_id: str, balance: str, label: str) -> dict[str, Any]:
    return {
        "site": {"id": site_id, "name": site_id.title(), "timezone": "Europe/Berlin",
                 "currency": "EUR", "country": "DE"},
        "accounts": [{"id": "a-01", "name": f"a-01 of {site_id}", "opening_balance": balance}],
        "badges": [{"uid": UID, "account": "a-01", "label": label}],
    }


LINDENHOF = site_document("lindenhof", "20.00", "Keller")
SEEBLICK = site_document("seeblick", "7.50", "Meier")


async def test_two_sites_each_get_their_own_account_badge_and_wallet(
    engine: AsyncEngine,
) -> None:
    await import_site(engine, copy.deepcopy(LINDENHOF))
    await import_site(engine, copy.deepcopy(SEEBLICK))
    before = await snapshot(engine)
    await import_site(engine, copy.deepcopy(SEEBLICK))  # twice: no change
    await import_site(engine, copy.deepcopy(LINDENHOF))
    assert await snapshot(engine) == before

    async with session_factory(engine)() as session:
        accounts = (await session.exec(select(Account).order_by(Account.id))).all()
        assert [(a.id, a.site_id, a.ref) for a in accounts] == [
            ("a-01", "lindenhof", "a-01"), ("seeblick:a-01", "seeblick", "a-01")]
        badges = (await session.exec(select(Badge).order_by(Badge.site_id))).all()
        assert [(b.site_id, b.uid, b.account_id, b.label) for b in badges] == [
            ("lindenhof", UID, "a-01", "Keller"), ("seeblick", UID, "seeblick:a-01", "Meier")]
        assert (await wallet_view(session, "a-01", datetime.now(UTC))).balance == Decimal("20.00")
        assert (await wallet_view(session, "seeblick:a-01", datetime.now(UTC))).balance == (
            Decimal("7.50"))

        # Exports write the site's own ids, and import back without change.
        exports = [await export_site(session, d["site"]["id"]) for d in (LINDENHOF, SEEBLICK)]
    for document, exported in zip((LINDENHOF, SEEBLICK), exports, strict=True):
        assert exported["accounts"] == [
            {"id": "a-01", "name": document["accounts"][0]["name"], "language": "de",
             "opening_balance": document["accounts"][0]["opening_balance"]}]
        assert exported["badges"] == [
            {"uid": UID, "account": "a-01", "label": document["badges"][0]["label"],
             "status": "active", "origin": "issued", "max_sessions": 1}]
        await import_site(engine, json.loads(json.dumps(exported)))
    assert await snapshot(engine) == before


async def test_a_badge_is_found_through_the_site_it_is_shown_at(engine: AsyncEngine) -> None:
    await import_site(engine, copy.deepcopy(LINDENHOF))
    await import_site(engine, copy.deepcopy(SEEBLICK))
    async with session_factory(engine)() as session:
        at_a = await lookup(session, UID, "hex", site_id="lindenhof")
        at_b = await lookup(session, "3300106756", "dec-reversed", site_id="seeblick")
        assert at_a is not None and (at_a.badge.site_id, at_a.badge.account_id) == (
            "lindenhof", "a-01")
        assert at_b is not None and (at_b.badge.site_id, at_b.badge.account_id) == (
            "seeblick", "seeblick:a-01")
        # blocking one site's badge leaves the other site's card of the same UID alone
        await block_badge(session, "seeblick", UID, now=datetime.now(UTC))
        await session.commit()
        again_a = await lookup(session, UID, "hex", site_id="lindenhof")
        again_b = await lookup(session, UID, "hex", site_id="seeblick")
        assert again_a is not None and again_a.badge.status == "active"
        assert again_b is not None and again_b.badge.status == "blocked"
        assert await lookup(session, UID, "hex", site_id="nowhere") is None


async def test_import_errors_name_no_other_sites_accounts_or_badges(engine: AsyncEngine) -> None:
    await import_site(engine, copy.deepcopy(LINDENHOF))
    bad = copy.deepcopy(SEEBLICK)
    bad["badges"].append({"uid": "F1E2D3C4", "account": "a-02"})  # no a-02 on seeblick
    with pytest.raises(SiteFileError) as caught:
        await import_site(engine, bad)
    assert caught.value.problems == ("badges[1].account: unknown account 'a-02'",)
    assert "lindenhof" not in str(caught.value)


async def test_new_account_ids_avoid_every_existing_key(engine: AsyncEngine) -> None:
    await import_site(engine, copy.deepcopy(LINDENHOF))
    await import_site(engine, copy.deepcopy(SEEBLICK))
    # a third site: another a-01, a ref that is the second site's internal key, and a ref
    # too long to be prefixed with the site
    third = site_document("zeil", "1.00", "Zeil")
    long_ref = "x" * 64
    third["accounts"] += [{"id": "seeblick:a-01", "name": "odd"}, {"id": long_ref, "name": "l"}]
    await import_site(engine, copy.deepcopy(third))
    fourth = site_document("ufer", "1.00", "Ufer")
    fourth["accounts"].append({"id": long_ref, "name": "l"})
    await import_site(engine, copy.deepcopy(fourth))
    async with session_factory(engine)() as session:
        ids = {(site, ref): getattr(await account_by_ref(session, site, ref), "id", None)
               for site, ref in (("zeil", "a-01"), ("zeil", "seeblick:a-01"),
                                 ("zeil", long_ref), ("ufer", long_ref))}
    assert ids[("zeil", "a-01")] == "zeil:a-01"
    assert ids[("zeil", "seeblick:a-01")] == "zeil:seeblick:a-01"
    assert ids[("zeil", long_ref)] == long_ref
    assert str(ids[("ufer", long_ref)]).startswith("acct-")
    async with session_factory(engine)() as session:
        assert (await export_site(session, "ufer"))["accounts"][1]["id"] == long_ref


@pytest.fixture
async def two_sites(api: Api) -> Api:
    admin = await api.admin()
    for document in (LINDENHOF, SEEBLICK):
        response = await api.client.post("/api/v1/sites/import", json=document, headers=admin)
        assert response.status_code == 200, response.text
    other = copy.deepcopy(SEEBLICK)
    other["accounts"].append({"id": "s-07", "name": "only on seeblick"})
    response = await api.client.post("/api/v1/sites/import", json=other, headers=admin)
    assert response.status_code == 200, response.text
    return api


async def test_a_site_owner_sees_only_its_own_accounts(two_sites: Api) -> None:
    api = two_sites
    owner = await api.token("owner", site="lindenhof")
    own = await api.client.get("/api/v1/accounts/a-01/wallet", headers=owner)
    assert own.status_code == 200 and own.json()["balance"] == "20.00"

    # seeblick's s-07: the same answer as an account that exists nowhere
    elsewhere = await api.client.get("/api/v1/accounts/s-07/wallet", headers=owner)
    nowhere = await api.client.get("/api/v1/accounts/s-08/wallet", headers=owner)
    assert (elsewhere.status_code, nowhere.status_code) == (404, 404)
    assert problem(elsewhere) == {"type": "about:blank", "title": "Not Found", "status": 404,
                                  "detail": "no account 's-07'"}
    assert problem(nowhere) == {"type": "about:blank", "title": "Not Found", "status": 404,
                                "detail": "no account 's-08'"}
    for path in ("/api/v1/accounts/s-07/ledger", "/api/v1/accounts/s-07/credit-policy"):
        answer = await api.client.get(path, headers=owner)
        assert answer.status_code == 404 and "seeblick" not in answer.text
    topup = await api.client.post("/api/v1/accounts/s-07/topups", headers=owner,
                                  json={"amount": "5.00", "reference": "R-1"})
    assert topup.status_code == 404 and "seeblick" not in topup.text
    # naming the other site is refused for the site, not for the account
    assert (await api.client.get("/api/v1/accounts/a-01/wallet", headers=owner,
                                 params={"site": "seeblick"})).status_code == 403

    # badges: the UID on seeblick is another badge; lindenhof's owner touches only its own
    blocked = await api.client.post(f"/api/v1/sites/lindenhof/badges/{UID}/block", headers=owner)
    assert blocked.status_code == 200
    assert blocked.json() | {"label": None} == {
        "site_id": "lindenhof", "uid": UID, "account_id": "a-01", "label": None,
        "status": "blocked", "valid_from": None, "valid_until": None, "origin": "issued",
        "card_type": None, "max_sessions": 1}
    seeblick_owner = await api.token("owner", site="seeblick")
    theirs = await api.client.get("/api/v1/sites/seeblick/badges", headers=seeblick_owner)
    assert [(b["uid"], b["account_id"], b["status"]) for b in theirs.json()] == [
        (UID, "a-01", "active")]

    # a resident token is bound to its own site's a-01
    keller = await api.token("resident", site="lindenhof", account="a-01")
    mine = await api.client.get("/api/v1/accounts/a-01/wallet", headers=keller)
    assert mine.status_code == 200 and mine.json()["balance"] == "20.00"


async def test_an_admin_names_the_site_when_an_id_is_on_several(two_sites: Api) -> None:
    api = two_sites
    admin = await api.admin()
    ambiguous = await api.client.get("/api/v1/accounts/a-01/wallet", headers=admin)
    assert ambiguous.status_code == 409
    assert "`site` query parameter" in problem(ambiguous)["detail"]
    assert problem(ambiguous)["detail"].startswith("site: ")
    for site, balance in (("lindenhof", "20.00"), ("seeblick", "7.50")):
        answer = await api.client.get("/api/v1/accounts/a-01/wallet", headers=admin,
                                      params={"site": site})
        assert answer.status_code == 200 and answer.json()["balance"] == balance
    # an id on one site only needs no parameter; one on none is 404
    only = await api.client.get("/api/v1/accounts/s-07/wallet", headers=admin)
    assert only.status_code == 200
    assert (await api.client.get("/api/v1/accounts/a-01/wallet", headers=admin,
                                 params={"site": "zeil"})).status_code == 404
    topup = await api.client.post("/api/v1/accounts/a-01/topups", headers=admin,
                                  params={"site": "seeblick"},
                                  json={"amount": "2.50", "reference": "R-9"})
    assert topup.status_code == 201 and topup.json()["balance"] == "10.00"

    # the sessions list filters by the site's account id the same way
    sessions = "/api/v1/sessions"
    assert (await api.client.get(sessions, headers=admin,
                                 params={"account": "a-01"})).status_code == 409
    assert (await api.client.get(sessions, headers=admin,
                                 params={"account": "a-01", "site": "seeblick"})).json() == []
    owner = await api.token("owner", site="lindenhof")
    hidden = await api.client.get(sessions, headers=owner, params={"account": "s-07"})
    assert hidden.status_code == 404 and "seeblick" not in hidden.text


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)

    async def prepare() -> None:
        from csms.db.migrate import upgrade_database

        engine = create_engine(url)
        await upgrade_database(engine)
        for document in (LINDENHOF, SEEBLICK):
            await import_site(engine, copy.deepcopy(document))
        await engine.dispose()

    asyncio.run(prepare())
    return url


def test_the_cli_asks_for_the_site_when_an_id_is_on_several(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["wallet", "show", "a-01"]) == 2
    err = capsys.readouterr().err
    assert "--site: account 'a-01' is on several sites (lindenhof, seeblick)" in err
    assert main(["wallet", "show", "a-01", "--site", "seeblick"]) == 0
    assert "balance    €7.50" in capsys.readouterr().out
    assert main(["wallet", "show", "a-01", "--site", "zeil"]) == 2
    assert "ACCOUNT: unknown account 'a-01' on site 'zeil'" in capsys.readouterr().err

    assert main(["badge", "block", UID]) == 2
    assert f"--site: badge {UID} is on several sites" in capsys.readouterr().err
    assert main(["badge", "block", UID, "--site", "seeblick"]) == 0
    assert capsys.readouterr().out == f"blocked {UID} (account a-01, blocked)\n"
    assert main(["badge", "list", "--account", "a-01", "--site", "seeblick"]) == 0
    assert capsys.readouterr().out.split("\t")[:3] == [UID, "a-01", "blocked"]
    assert main(["badge", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [
        ["lindenhof/a-01", "active"], ["seeblick/a-01", "blocked"]]
    assert main(["badge", "register", "F1E2D3C4", "--account", "a-01"]) == 2
    assert "--site: account 'a-01' is on several sites" in capsys.readouterr().err
