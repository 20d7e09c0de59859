"""Password checks that scale: a verified-login record under a key the database does not hold.

scrypt calls are counted at `security._scrypt` (the one place that runs it): a restarted node
lets known stations in without it, wrong passwords still pay it and are still paused, a site
import of plain passwords runs none, and the database alone cannot test a password.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.exceptions import InvalidStatus

from csms.db.engine import session_factory
from csms.documents import read_document
from csms.inventory.models import Station
from csms.inventory.sitefile import import_site
from csms.ocpp import security
from csms.ocpp.connection import Limits
from csms.ocpp.security import (
    load_or_create_login_key,
    login_verifier,
    verifier_matches,
    verify_station_password,
)
from csms.ocpp.server import ServerOptions
from csms.settings import Settings
from tests.csms.ocpp.conftest import PASSWORD, Node, add_site, add_station, start_node, stop_node
from tests.csms.ocpp.wsclient import open_raw

KEY = bytes(range(32))
DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-site.yaml"


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every scrypt run from here on appends to the list (the real hash still runs)."""
    calls: list[int] = []
    real: Callable[..., bytes] = security._scrypt

    def counted(*args: Any) -> bytes:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(security, "_scrypt", counted)
    return calls


def options(key: bytes | None = KEY, **kwargs: Any) -> ServerOptions:
    return ServerOptions(port=0, limits=Limits(call_timeout_s=10), login_key=key, **kwargs)


async def status_of(node: Node, station_id: str, password: str) -> int:
    try:
        ws = await open_raw(node.url, station_id, password=password)
    except InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return 101


async def row(engine: AsyncEngine, station_id: str) -> Station:
    async with session_factory(engine)() as session:
        found = await session.get(Station, station_id)
        assert found is not None
        return found


async def test_a_restarted_node_lets_known_stations_in_without_scrypt(
    sqlite_engine: AsyncEngine, scrypt_calls: list[int]
) -> None:
    await add_site(sqlite_engine)
    for n in range(3):
        await add_station(sqlite_engine, f"WB-{n}")
    scrypt_calls.clear()
    node = await start_node(sqlite_engine, options=options())
    try:
        for n in range(3):
            assert await status_of(node, f"WB-{n}", PASSWORD) == 101
        # The first login after the upgrade checks scrypt once per station ...
        assert len(scrypt_calls) == 3
    finally:
        await stop_node(node)
    scrypt_calls.clear()
    node = await start_node(sqlite_engine, options=options())
    try:
        for n in range(3):
            assert await status_of(node, f"WB-{n}", PASSWORD) == 101
        # ... and never again, also after the restart.
        assert scrypt_calls == []
    finally:
        await stop_node(node)
    # A node with another key trusts none of the records: scrypt again, then its own record.
    node = await start_node(sqlite_engine, options=options(bytes(32)))
    try:
        assert await status_of(node, "WB-0", PASSWORD) == 101
        assert len(scrypt_calls) == 1
        assert verifier_matches(
            bytes(32), "WB-0", (await row(sqlite_engine, "WB-0")).password_hash, PASSWORD,
            (await row(sqlite_engine, "WB-0")).login_verifier,
        )
    finally:
        await stop_node(node)


async def test_wrong_passwords_still_cost_scrypt_and_are_paused(
    sqlite_engine: AsyncEngine, scrypt_calls: list[int]
) -> None:
    await add_site(sqlite_engine)
    await add_station(sqlite_engine, "WB-1")
    node = await start_node(
        sqlite_engine, options=options(login_failures=3, login_window_s=60, login_lockout_s=60)
    )
    try:
        assert await status_of(node, "WB-1", PASSWORD) == 101
        scrypt_calls.clear()
        for attempt in range(3):
            assert await status_of(node, "WB-1", f"guess-number-{attempt:04d}") == 401
        # The record does not shortcut a wrong answer: each guess paid a full scrypt.
        assert len(scrypt_calls) == 3
        # Paused: even the right password waits, and nothing is hashed.
        assert await status_of(node, "WB-1", PASSWORD) == 429
        assert len(scrypt_calls) == 3
    finally:
        await stop_node(node)


async def test_the_database_alone_does_not_verify_a_password(
    sqlite_engine: AsyncEngine,
) -> None:
    await add_site(sqlite_engine)
    await add_station(sqlite_engine, "WB-1")
    node = await start_node(sqlite_engine, options=options())
    try:
        assert await status_of(node, "WB-1", PASSWORD) == 101
    finally:
        await stop_node(node)
    stolen = await row(sqlite_engine, "WB-1")
    assert stolen.login_verifier is not None and stolen.password_hash is not None
    assert PASSWORD not in stolen.login_verifier
    # With the key, the record checks the right password (what the node does) ...
    assert verifier_matches(KEY, "WB-1", stolen.password_hash, PASSWORD, stolen.login_verifier)
    # ... without it, the right password matches nothing a thief can compute from the row:
    # not under another key, not as a plain or keyless digest of what the row holds.
    for guess_key in (bytes(32), b"", stolen.password_hash.encode(), b"WB-1"):
        assert not verifier_matches(
            guess_key, "WB-1", stolen.password_hash, PASSWORD, stolen.login_verifier
        )
    digest = stolen.login_verifier.split("$", 1)[1]
    message = "\x00".join((security.VERIFIER_SCHEME, "WB-1", stolen.password_hash, PASSWORD))
    assert base64.b64encode(hashlib.sha256(message.encode()).digest()).decode() != digest
    assert base64.b64encode(
        hmac.new(b"", message.encode(), hashlib.sha256).digest()
    ).decode() != digest
    # What remains testable offline is the scrypt hash, at scrypt's price, as before.
    assert stolen.password_hash.startswith("scrypt$16384$8$1$")


async def test_importing_plain_passwords_runs_no_scrypt_and_hashes_after_first_login(
    sqlite_engine: AsyncEngine, scrypt_calls: list[int]
) -> None:
    document = read_document(DEMO)
    await import_site(sqlite_engine, copy.deepcopy(document), login_key=KEY)
    assert scrypt_calls == []
    imported = await row(sqlite_engine, "WB-A-01")
    assert imported.password_hash is None
    assert imported.login_verifier == login_verifier(KEY, "WB-A-01", None, "demo-password-A01")
    # A second import of the same file changes nothing and still hashes nothing.
    await import_site(sqlite_engine, copy.deepcopy(document), login_key=KEY)
    assert (await row(sqlite_engine, "WB-A-01")).login_verifier == imported.login_verifier
    assert scrypt_calls == []

    node = await start_node(sqlite_engine, options=options())
    try:
        assert await status_of(node, "WB-A-01", "wrong-password-0000") == 401
        assert await status_of(node, "WB-A-01", "demo-password-A01") == 101
        await node.server.logins.hashed()
    finally:
        await stop_node(node)
    hashed = await row(sqlite_engine, "WB-A-01")
    # The slow hash is the source of truth again, and the record follows it.
    assert hashed.password_hash is not None
    assert verify_station_password("demo-password-A01", hashed.password_hash)
    assert verifier_matches(
        KEY, "WB-A-01", hashed.password_hash, "demo-password-A01", hashed.login_verifier
    )
    # The station that never logged in still waits for its first login.
    assert (await row(sqlite_engine, "WB-B-01")).password_hash is None

    scrypt_calls.clear()
    node = await start_node(sqlite_engine, options=options())
    try:
        assert await status_of(node, "WB-A-01", "demo-password-A01") == 101
        assert scrypt_calls == []
    finally:
        await stop_node(node)
    # Re-importing the same password keeps the hash; a new password replaces both.
    await import_site(sqlite_engine, copy.deepcopy(document), login_key=KEY)
    assert (await row(sqlite_engine, "WB-A-01")).password_hash == hashed.password_hash
    document["stations"][0]["password"] = "another-password-A01"
    await import_site(sqlite_engine, document, login_key=KEY)
    changed = await row(sqlite_engine, "WB-A-01")
    assert changed.password_hash is None
    assert not verifier_matches(
        KEY, "WB-A-01", None, "demo-password-A01", changed.login_verifier
    )


def test_the_key_file_is_created_once_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "login.key"
    key = load_or_create_login_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_login_key(path) == key
    settings = Settings(login_key_file=path)
    assert settings.station_login_key() == key
    assert Settings(login_key="ab" * 32).station_login_key() == bytes([0xAB]) * 32
    with pytest.raises(ValueError, match="login_key"):
        Settings(login_key="not-hex")
