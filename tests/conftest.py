"""Fixtures every test folder shares: databases (SQLite always, PostgreSQL when
VOLTHAUS_TEST_DATABASE_URL is set) and the Redis URL.

Each test run gets its own PostgreSQL database (created here, dropped at the end), and each test
a freshly migrated schema, so parallel runs and tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.auth.tokens import create_token
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.db.scratch import admin_execute, scratch_database
from csms.logging import configure_logging
from csms.serve import RunningNode, running_node
from csms.settings import Settings

POSTGRES_URL = os.environ.get("VOLTHAUS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("VOLTHAUS_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def postgres_run_url() -> Iterator[str]:
    """A database of this test run's own on the server named by VOLTHAUS_TEST_DATABASE_URL."""
    if not POSTGRES_URL:
        pytest.skip("postgres: VOLTHAUS_TEST_DATABASE_URL is not set")
    with scratch_database(POSTGRES_URL, "volthaus_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A plain URL (as a user would write it) to an empty database, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'volthaus.db'}"
        return
    base = request.getfixturevalue("postgres_run_url")
    asyncio.run(admin_execute(base, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    yield base


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database on each backend."""
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database, for tests whose subject is not the storage backend."""
    engine = create_engine(f"sqlite:///{tmp_path / 'volthaus.db'}")
    await upgrade_database(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("redis: VOLTHAUS_TEST_REDIS_URL is not set")
    return REDIS_URL


@dataclass
class Api:
    """A running node (real HTTP socket on 127.0.0.1) and a client for it."""

    node: RunningNode
    client: httpx.AsyncClient

    async def token(
        self, role: str, site: str | None = None, account: str | None = None,
        reader: str | None = None,
    ) -> dict[str, str]:
        """Mint a token and return the request headers that carry it."""
        async with session_factory(self.node.engine)() as session:
            token = await create_token(
                session, role=role, site_id=site, account_id=account, reader_id=reader,
                now=datetime.now(UTC),
            )
            await session.commit()
        return {"Authorization": f"Bearer {token}"}

    async def admin(self) -> dict[str, str]:
        return await self.token("admin")


def node_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url, "host": "127.0.0.1", "http_port": 0, "ocpp_port": 0,
        "log_format": "console",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """A whole node on SQLite with an empty inventory."""
    settings = node_settings(f"sqlite:///{tmp_path / 'api.db'}")
    async with running_node(settings) as node, httpx.AsyncClient(
        base_url=node.http_url, timeout=30
    ) as client:
        yield Api(node, client)


class JsonLogs:
    """The JSON log lines written while the `json_logs` fixture is active, as the production
    configuration (`csms.logging.configure_logging`) renders them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.stream.getvalue().splitlines() if line]
        return [line for line in parsed if event is None or line.get("event") == event]

    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def json_logs() -> Iterator[JsonLogs]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs = JsonLogs()
    configure_logging("INFO", "json", stream=logs.stream)
    structlog.configure(cache_logger_on_first_use=False)  # later tests get the defaults back
    try:
        yield logs
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


class Inbox:
    """What a real SMTP server (aiosmtpd on loopback) received."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        mail = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        return "250 OK"


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[int, Inbox]]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], inbox
    server.close()
    await server.wait_closed()
