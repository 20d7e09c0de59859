"""Money typed in by a person, at the edge: a 422 naming the field over HTTP (SQLite and
PostgreSQL), exit 2 naming the argument on the command line (in a real process too), and the
site's own maximum from its site file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
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
accounts: [{id: a-01, name: Keller, opening_balance: "20.00"}]
"""
ABSURD = ("10.005", "99999999999999", "1e30", "NaN", "-5", "0")


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


async def test_absurd_amounts_are_422_naming_the_field_and_change_nothing(site: Api) -> None:
    owner = await site.token("owner", site="lindenhof")
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    for text in ABSURD:
        topup = await site.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                       json={"amount": text, "reference": f"R-{text}"})
        assert topup.status_code == 422, (text, topup.text)
        assert problem_lines(topup) and all(
            problem.startswith("amount: ") for problem in problem_lines(topup)), topup.text
        batch = await site.client.post("/api/v1/vouchers/batches", headers=owner, json={
            "value": text, "count": 1, "expires_at": expires, "reference": f"B-{text}"})
        assert batch.status_code == 422, (text, batch.text)
        assert all(problem.startswith("value: ") for problem in problem_lines(batch))
    tiny = await site.client.post("/api/v1/vouchers/batches", headers=owner, json={
        "value": "0.001", "count": 1, "expires_at": expires, "reference": "tiny"})
    assert problem_lines(tiny) == [
        "value: 0.001 has more decimals than the minor unit of EUR (0.01)"]
    above = await site.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                   json={"amount": "500.01", "reference": "big"})
    assert problem_lines(above) == [
        "amount: 500.01 is above this site's maximum of 500.00 EUR per top-up"]
    wallet = await site.client.get("/api/v1/accounts/a-01/wallet", headers=owner)
    assert wallet.json()["balance"] == "20.00"
    ledger = await site.client.get("/api/v1/accounts/a-01/ledger", headers=owner)
    assert [line["kind"] for line in ledger.json()["lines"]] == ["opening"]
    most = await site.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                  json={"amount": "500.00", "reference": "most"})
    assert most.status_code == 201 and most.json()["balance"] == "520.00"


async def test_the_site_file_sets_the_maximum(site: Api) -> None:
    admin = await site.admin()
    bad = await site.client.post("/api/v1/sites/import", headers=admin, content=SITE.replace(
        "country: DE}", 'country: DE, max_top_up: "1e30", max_voucher: "0.005"}'))
    assert bad.status_code == 422
    text = "\n".join(problem_lines(bad))
    assert "site.max_top_up: '1e30' is not a decimal amount" in text
    assert "site.max_voucher: 0.005 has more decimals than the minor unit of EUR" in text
    exported = await site.client.get("/api/v1/sites/lindenhof/export", headers=admin)
    assert (exported.json()["site"]["max_top_up"],
            exported.json()["site"]["max_voucher"]) == ("500.00", "500.00")
    good = await site.client.post("/api/v1/sites/import", headers=admin, content=SITE.replace(
        "country: DE}", 'country: DE, max_top_up: "1000", max_voucher: "50.00"}'))
    assert good.status_code == 200, good.text
    exported = await site.client.get("/api/v1/sites/lindenhof/export", headers=admin)
    assert (exported.json()["site"]["max_top_up"],
            exported.json()["site"]["max_voucher"]) == ("1000.00", "50.00")
    owner = await site.token("owner", site="lindenhof")
    big = await site.client.post("/api/v1/accounts/a-01/topups", headers=owner,
                                 json={"amount": "800.00", "reference": "big"})
    assert big.status_code == 201, big.text
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    voucher = await site.client.post("/api/v1/vouchers/batches", headers=owner, json={
        "value": "60.00", "count": 1, "expires_at": expires, "reference": "v"})
    assert problem_lines(voucher) == [
        "value: 60.00 is above this site's maximum of 50.00 EUR per voucher"]


def volthaus_process(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it: its own process, this checkout's code."""
    return subprocess.run(
        [sys.executable, "-m", "csms.cli.main", *args], capture_output=True, text=True,
        timeout=60, check=False, cwd=ROOT,
        env=dict(os.environ, VOLTHAUS_DATABASE_URL=database, PYTHONPATH=str(ROOT)),
    )


Volthaus = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def volthaus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Volthaus:
    """The command through `csms.cli.main.main` in this process (a subprocess would import the
    whole stack for every call: seconds each), answered as a process would."""

    def run(*args: str, database: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", *args], code, out, err)

    return run


def test_a_real_process_refuses_an_absurd_amount_with_exit_2(
    volthaus: Volthaus, tmp_path: Path
) -> None:
    """`volthaus wallet` as a person runs it: exit 2 naming the argument, no traceback."""
    database = f"sqlite:///{tmp_path / 'money.db'}"
    (tmp_path / "site.yaml").write_text(SITE)
    imported = volthaus("site", "import", str(tmp_path / "site.yaml"), database=database)
    assert imported.returncode == 0, imported.stderr
    done = volthaus_process("wallet", "topup", "a-01", "1e30", "--receipt", "R", "--staff",
                            "anna", database=database)
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "volthaus wallet: AMOUNT: '1e30' is not a decimal amount" in done.stderr


def test_cli_refuses_absurd_amounts_with_exit_2(volthaus: Volthaus, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'money.db'}"
    (tmp_path / "site.yaml").write_text(SITE)
    imported = volthaus("site", "import", str(tmp_path / "site.yaml"), database=database)
    assert imported.returncode == 0, imported.stderr
    for text in ABSURD:
        done = volthaus("wallet", "topup", "a-01", text, "--receipt", f"R{text}",
                        "--staff", "anna", database=database)
        assert done.returncode == 2, (text, done.stderr)
        assert "Traceback" not in done.stderr and "volthaus wallet: AMOUNT: " in done.stderr
        voucher = volthaus("wallet", "vouchers", "create", "--site", "lindenhof", "--value", text,
                           "--count", "1", "--expires", "2099-01-01", "--reference", f"b{text}",
                           database=database)
        assert voucher.returncode == 2, (text, voucher.stderr)
        assert "Traceback" not in voucher.stderr and "--value: " in voucher.stderr
    done = volthaus("wallet", "topup", "a-01", "1e30", "--receipt", "R", "--staff", "anna",
                    database=database)
    assert "volthaus wallet: AMOUNT: '1e30' is not a decimal amount" in done.stderr
    shown = volthaus("wallet", "show", "a-01", database=database)
    assert "balance    €20.00" in shown.stdout
