"""Tokens of role `reader`: bound to one reader of their site, refused with the field named
otherwise, listed with their reader (library, CLI and API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.auth.tokens import TokenScopeError, authenticate, create_token, list_tokens
from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site, import_site_file
from tests.conftest import Api
from tests.csms.test_api_readers import SEEBLICK
from tests.csms.test_api_tokens import Volthaus, token_id, volthaus  # noqa: F401 (fixture)
from tests.csms.test_sitefile import DEMO

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("scope", "message"), [
    ({"site_id": "lindenhof"}, "reader: a reader token needs --reader"),
    ({"reader_id": "reader-1"}, "site: a reader token needs --site"),
    ({"site_id": "lindenhof", "reader_id": "reader-9"},
     "reader: unknown reader 'reader-9' on site 'lindenhof'"),
    # Another site's reader is unknown here, in the same words.
    ({"site_id": "lindenhof", "reader_id": "reader-s"},
     "reader: unknown reader 'reader-s' on site 'lindenhof'"),
    ({"site_id": "nowhere", "reader_id": "reader-1"}, "site: unknown site 'nowhere'"),
    ({"site_id": "lindenhof", "reader_id": "reader-1", "account_id": "a-01"},
     "account: only resident tokens are bound to an account"),
])
async def test_a_reader_token_needs_a_reader_of_its_site(
    engine: AsyncEngine, scope: dict[str, str], message: str
) -> None:
    await import_site_file(engine, DEMO)
    await import_site(engine, yaml.safe_load(SEEBLICK))
    async with session_factory(engine)() as session:
        with pytest.raises(TokenScopeError) as error:
            await create_token(session, role="reader", now=NOW, **scope)
        assert str(error.value) == message


@pytest.mark.parametrize("role", ["admin", "owner", "installer"])
async def test_only_reader_tokens_are_bound_to_a_reader(engine: AsyncEngine, role: str) -> None:
    await import_site_file(engine, DEMO)
    async with session_factory(engine)() as session:
        with pytest.raises(TokenScopeError, match=r"^reader: only reader tokens are bound"):
            await create_token(session, role=role, site_id="lindenhof", reader_id="reader-1",
                               now=NOW)


async def test_the_principal_carries_the_reader(engine: AsyncEngine) -> None:
    await import_site_file(engine, DEMO)
    async with session_factory(engine)() as session:
        token = await create_token(session, role="reader", site_id="lindenhof",
                                   reader_id="reader-1", label="washing room", now=NOW)
        owner = await create_token(session, role="owner", site_id="lindenhof", now=NOW)
        await session.commit()
        principal = await authenticate(session, token)
        assert principal is not None
        assert (principal.role, principal.site_id, principal.reader_id, principal.account_id) == (
            "reader", "lindenhof", "reader-1", None)
        other = await authenticate(session, owner)
        assert other is not None and other.reader_id is None
        listed = {t["role"]: t for t in await list_tokens(session, site_id="lindenhof")}
        assert listed["reader"]["reader_id"] == "reader-1"
        assert listed["reader"]["label"] == "washing room"
        assert listed["owner"]["reader_id"] is None


def test_cli_mints_and_lists_reader_tokens(volthaus: Volthaus, tmp_path: Path) -> None:  # noqa: F811
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    assert volthaus("site", "import", str(DEMO), database=database).returncode == 0
    minted = volthaus("token", "create", "--role", "reader", "--site", "lindenhof",
                      "--reader", "reader-1", database=database)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.startswith("vh_")
    listing = volthaus("token", "list", database=database).stdout
    lines = {line.split("\t")[0]: line.split("\t") for line in listing.splitlines()}
    assert lines[token.split("_", 2)[1]][1:3] == ["reader", "lindenhof/reader-1"]
    as_json = json.loads(volthaus("token", "list", "--json", database=database).stdout)
    assert [t["reader_id"] for t in as_json if t["role"] == "reader"] == ["reader-1"]

    for args, message in (
        (("--site", "lindenhof"), "reader: a reader token needs --reader"),
        (("--site", "lindenhof", "--reader", "reader-9"),
         "reader: unknown reader 'reader-9' on site 'lindenhof'"),
    ):
        refused = volthaus("token", "create", "--role", "reader", *args, database=database)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1] == f"volthaus token create: {message}"
    owner = volthaus("token", "create", "--role", "owner", "--site", "lindenhof", "--reader",
                     "reader-1", database=database)
    assert owner.returncode == 2
    assert owner.stderr.strip().splitlines()[-1] == (
        "volthaus token create: reader: only reader tokens are bound to a reader")


async def test_api_lists_the_reader_of_a_token(api: Api) -> None:
    admin = await api.admin()
    imported = await api.client.post("/api/v1/sites/import", content=DEMO.read_text(),
                                     headers=admin)
    assert imported.status_code == 200
    reader = await api.token("reader", site="lindenhof", reader="reader-1")
    owner = await api.token("owner", site="lindenhof")
    listing = (await api.client.get("/api/v1/tokens", headers=owner)).json()
    shown = {t["id"]: t for t in listing}[token_id(reader)]
    assert shown | {"created_at": None} == {
        "id": token_id(reader), "role": "reader", "site_id": "lindenhof", "account_id": None,
        "reader_id": "reader-1", "label": None, "created_at": None, "revoked_at": None,
    }
    assert reader["Authorization"].split("_", 2)[2] not in str(listing)
