"""API tokens are listed (never with their secrets) and revoked, over the real API and the CLI; a
revocation holds at once on every node of the same database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from csms.cli.main import main
from csms.serve import running_node
from tests.conftest import Api, node_settings
from tests.csms.problems import problem

SITES = (
    "site: {id: s1, name: S1, timezone: Europe/Vienna, currency: EUR, country: AT}\n"
    "accounts: [{id: a-01, name: A}]",
    "site: {id: s2, name: S2, timezone: Europe/Vienna, currency: EUR, country: AT}\n"
    "accounts: [{id: a-01, name: B}]",
)


def token_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_", 2)[1]


def secret(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_", 2)[2]


async def test_listing_shows_no_secret_and_owners_see_their_site_only(api: Api) -> None:
    admin = await api.admin()
    for body in SITES:
        imported = await api.client.post("/api/v1/sites/import", content=body, headers=admin)
        assert imported.status_code == 200, imported.text
    owner1 = await api.token("owner", site="s1")
    owner2 = await api.token("owner", site="s2")
    resident = await api.token("resident", site="s1", account="a-01")
    installer = await api.token("installer", site="s1")

    listing = await api.client.get("/api/v1/tokens", headers=admin)
    assert listing.status_code == 200
    for headers in (admin, owner1, owner2, resident, installer):
        assert secret(headers) not in listing.text
    assert "sha256" not in listing.text and "secret" not in listing.text
    by_id = {t["id"]: t for t in listing.json()}
    assert {token_id(h) for h in (admin, owner1, owner2, resident, installer)} <= set(by_id)
    assert by_id[token_id(resident)] | {"created_at": None} == {
        "id": token_id(resident), "role": "resident", "site_id": "s1", "account_id": "a-01",
        "reader_id": None, "label": None, "created_at": None, "revoked_at": None,
    }

    mine = await api.client.get("/api/v1/tokens", headers=owner1)
    assert mine.status_code == 200
    assert {t["id"] for t in mine.json()} == {
        token_id(owner1), token_id(resident), token_id(installer)
    }
    assert (await api.client.get("/api/v1/tokens?site=s2", headers=owner1)).status_code == 403
    only_s2 = await api.client.get("/api/v1/tokens?site=s2", headers=admin)
    assert [t["id"] for t in only_s2.json()] == [token_id(owner2)]
    assert (await api.client.get("/api/v1/tokens", headers=resident)).status_code == 403
    assert (await api.client.get("/api/v1/tokens", headers=installer)).status_code == 403
    assert (await api.client.get("/api/v1/tokens")).status_code == 401

    # An owner reaches the tokens of their own site only; another site's is not found.
    other = await api.client.post(f"/api/v1/tokens/{token_id(owner2)}/revoke", headers=owner1)
    assert other.status_code == 404
    admin_token = await api.client.post(f"/api/v1/tokens/{token_id(admin)}/revoke",
                                        headers=owner1)
    assert admin_token.status_code == 404
    assert (await api.client.get("/api/v1/tokens", headers=owner2)).status_code == 200

    revoked = await api.client.post(f"/api/v1/tokens/{token_id(resident)}/revoke",
                                    headers=owner1)
    assert revoked.status_code == 200
    assert revoked.json()["was_active"] is True and revoked.json()["revoked_at"]
    assert secret(resident) not in revoked.text
    refused = await api.client.get("/api/v1/accounts/a-01/wallet", headers=resident)
    assert refused.status_code == 401 and "revoked" in problem(refused)["detail"]
    again = await api.client.post(f"/api/v1/tokens/{token_id(resident)}/revoke", headers=admin)
    assert again.status_code == 200 and again.json()["was_active"] is False
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]

    active = {t["id"] for t in (await api.client.get("/api/v1/tokens", headers=owner1)).json()}
    assert token_id(resident) not in active
    every = await api.client.get("/api/v1/tokens?include_revoked=true", headers=owner1)
    assert {t["id"]: t["revoked_at"] for t in every.json()}[token_id(resident)]
    unknown = await api.client.post("/api/v1/tokens/nope/revoke", headers=admin)
    assert unknown.status_code == 404 and "unknown token 'nope'" in problem(unknown)["detail"]

    # An owner may revoke their own token; it stops working at once.
    own = await api.client.post(f"/api/v1/tokens/{token_id(owner1)}/revoke", headers=owner1)
    assert own.status_code == 200
    assert (await api.client.get("/api/v1/tokens", headers=owner1)).status_code == 401


async def test_a_revocation_holds_at_once_on_every_node(database_url: str) -> None:
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(running_node(node_settings(database_url)))
            for _ in range(2)
        ]
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=n.http_url, timeout=30))
            for n in nodes
        ]
        apis = [Api(node, client) for node, client in zip(nodes, clients, strict=True)]
        admin = await apis[0].admin()
        victim = await apis[0].token("admin")
        for client in clients:  # both nodes know the token (and would cache it, if they did)
            assert (await client.get("/api/v1/tokens", headers=victim)).status_code == 200
        revoked = await clients[0].post(
            f"/api/v1/tokens/{token_id(victim)}/revoke", headers=admin
        )
        assert revoked.status_code == 200
        for client in clients:
            refused = await client.get("/api/v1/tokens", headers=victim)
            assert refused.status_code == 401, refused.text


Volthaus = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def volthaus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Volthaus:
    """The command through `csms.cli.main.main` in this process (a subprocess would import the
    whole stack for every call); `volthaus token` as a real process is tested in
    tests/cli/test_serve_commands.py."""

    def run(*args: str, database: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", *args], code, out, err)

    return run


def test_cli_lists_and_revokes_tokens(volthaus: Volthaus, tmp_path: Path) -> None:
    # On SQLite only: the CLI calls the same `list_tokens` and `revoke_token` as the API, which
    # the two-node test above runs on PostgreSQL too; what this test adds is the CLI's lines,
    # JSON and exit codes, and those do not depend on the backend.
    database_url = f"sqlite:///{tmp_path / 'tokens.db'}"
    site = tmp_path / "s1.yaml"
    site.write_text(SITES[0])
    assert volthaus("site", "import", str(site), database=database_url).returncode == 0
    admin = volthaus("token", "create", "--role", "admin", "--label", "ops",
                     database=database_url).stdout.strip()
    owner = volthaus("token", "create", "--role", "owner", "--site", "s1",
                     database=database_url).stdout.strip()
    resident = volthaus("token", "create", "--role", "resident", "--site", "s1", "--account",
                        "a-01", database=database_url).stdout.strip()

    listing = volthaus("token", "list", database=database_url)
    assert listing.returncode == 0
    for token in (admin, owner, resident):
        assert token.split("_", 2)[2] not in listing.stdout
    lines = {line.split("\t")[0]: line.split("\t") for line in listing.stdout.splitlines()}
    admin_id, owner_id, resident_id = (t.split("_", 2)[1] for t in (admin, owner, resident))
    assert lines[admin_id][1:4] == ["admin", "*", "ops"]
    assert lines[resident_id][1:3] == ["resident", "s1/a-01"]
    assert lines[owner_id][-1] == "active"
    site_only = volthaus("token", "list", "--site", "s1", "--json", database=database_url)
    assert {t["id"] for t in json.loads(site_only.stdout)} == {owner_id, resident_id}

    revoked = volthaus("token", "revoke", owner_id, database=database_url)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked {owner_id}"
    # The whole token text names it too (revoking what leaked).
    by_text = volthaus("token", "revoke", resident, database=database_url)
    assert by_text.returncode == 0 and resident_id in by_text.stdout
    assert resident.split("_", 2)[2] not in by_text.stdout + by_text.stderr
    again = volthaus("token", "revoke", owner_id, database=database_url)
    assert again.returncode == 0 and "was revoked already" in again.stdout

    active = volthaus("token", "list", database=database_url).stdout
    assert owner_id not in active and resident_id not in active and admin_id in active
    every = volthaus("token", "list", "--all", database=database_url).stdout
    assert f"{owner_id}\towner" in every and "revoked 20" in every

    unknown = volthaus("token", "revoke", "nope", database=database_url)
    assert unknown.returncode == 2
    database_line, message = unknown.stderr.strip().splitlines()
    assert database_line.startswith("volthaus: database ")
    assert message == "volthaus token revoke: token_id: unknown token 'nope'"
