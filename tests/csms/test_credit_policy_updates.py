"""Credit policy updates: PATCH changes only the fields sent; PUT takes the whole document and
names every missing field (API on SQLite and PostgreSQL, and the command line)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from csms.cli.main import main
from csms.serve import running_node
from tests.conftest import Api, node_settings
from tests.csms.problems import problem_lines

ROOT = Path(__file__).resolve().parents[2]
SITE = """
site: {id: lindenhof, name: Lindenhof, timezone: Europe/Berlin, currency: EUR, country: DE}
accounts: [{id: a-01, name: Keller}]
"""
PATH = "/api/v1/accounts/a-01/credit-policy"


@pytest.fixture
async def site(database_url: str) -> AsyncIterator[Api]:
    async with running_node(node_settings(database_url)) as node, httpx.AsyncClient(
        base_url=node.http_url, timeout=30
    ) as client:
        api = Api(node, client)
        imported = await client.post("/api/v1/sites/import", content=SITE,
                                     headers=await api.admin())
        assert imported.status_code == 200, imported.text
        yield api


async def test_patch_changes_only_the_fields_sent(site: Api) -> None:
    owner = await site.token("owner", site="lindenhof")
    first = await site.client.patch(PATH, headers=owner, json={
        "emergency_credit": "10.00", "start_minimum": "2.00",
        "friendly": {"weekends": True}, "low_balance_thresholds": ["5.00"]})
    assert first.status_code == 200, first.text
    before = first.json()
    second = await site.client.patch(PATH, headers=owner,
                                     json={"friendly": {"holidays": True}})
    assert second.status_code == 200, second.text
    after = second.json()
    assert after["friendly"] == {**before["friendly"], "holidays": True}
    assert after["friendly"]["weekends"] is True
    assert {k: v for k, v in after.items() if k != "friendly"} == {
        k: v for k, v in before.items() if k != "friendly"}
    assert (after["emergency_credit"], after["start_minimum"]) == ("10.00", "2.00")
    bad = await site.client.patch(PATH, headers=owner,
                                  json={"mode": "later", "friendly": {"colour": "red"}})
    assert bad.status_code == 422
    assert problem_lines(bad) == ["mode: must be one of prepaid, free, blocked",
                                      "friendly.colour: unknown key"]
    assert (await site.client.get(PATH, headers=owner)).json() == after


async def test_put_requires_the_whole_document(site: Api) -> None:
    owner = await site.token("owner", site="lindenhof")
    whole = (await site.client.get(PATH, headers=owner)).json()
    whole["emergency_credit"] = "7.00"
    whole["debt_recovery"]["topup_percent"] = "20"
    put = await site.client.put(PATH, headers=owner, json=whole)
    assert put.status_code == 200, put.text
    assert put.json() == whole
    partial = await site.client.put(PATH, headers=owner, json={
        "emergency_credit": "1.00", "friendly": {"weekends": True}})
    assert partial.status_code == 422
    problems = problem_lines(partial)
    for field in ("mode", "start_minimum", "debt_recovery", "low_balance_thresholds",
                  "friendly.daily", "friendly.holidays", "friendly.credit_days",
                  "friendly.span"):
        assert any(problem.startswith(f"{field}: required") for problem in problems), (
            field, problems)
    assert not any(p.startswith(("emergency_credit", "friendly.weekends")) for p in problems)
    assert (await site.client.get(PATH, headers=owner)).json() == whole


Volthaus = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def volthaus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Volthaus:
    """The command through `csms.cli.main.main` in this process (a subprocess would import the
    whole stack for every call: seconds each), answered as a process would;
    `volthaus wallet` as a real process is tested in test_money_input.py."""

    def run(*args: str, database: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", *args], code, out, err)

    return run


def test_cli_policy_set_is_whole_and_patch_is_partial(volthaus: Volthaus, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'policy.db'}"
    (tmp_path / "site.yaml").write_text(SITE)
    assert volthaus("site", "import", str(tmp_path / "site.yaml"),
                    database=database).returncode == 0
    patch = tmp_path / "patch.yaml"
    patch.write_text('emergency_credit: "5.00"\nfriendly: {weekends: true}\n')
    done = volthaus("wallet", "policy", "patch", "a-01", str(patch), database=database)
    assert done.returncode == 0, done.stderr
    patch.write_text('start_minimum: "3.00"\n')
    done = volthaus("wallet", "policy", "patch", "a-01", str(patch), database=database)
    assert done.returncode == 0, done.stderr
    shown = volthaus("wallet", "policy", "show", "a-01", database=database).stdout
    assert '"emergency_credit": "5.00"' in shown and '"weekends": true' in shown
    assert '"start_minimum": "3.00"' in shown
    refused = volthaus("wallet", "policy", "set", "a-01", str(patch), database=database)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "volthaus wallet: mode: required" in refused.stderr
    assert "volthaus wallet: emergency_credit: required" in refused.stderr
    assert volthaus("wallet", "policy", "show", "a-01", database=database).stdout == shown
    whole = tmp_path / "whole.json"
    whole.write_text(shown.replace('"3.00"', '"4.00"'))
    done = volthaus("wallet", "policy", "set", "a-01", str(whole), database=database)
    assert done.returncode == 0 and '"start_minimum": "4.00"' in done.stdout
