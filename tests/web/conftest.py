"""The portal under test: a whole node (HTTP and OCPP on free ports, a temporary SQLite file, the
demo site imported) and, for browser tests, headless Debian Chromium driven by Playwright.

Browser tests are marked `browser`; they skip where /usr/bin/chromium is missing, and `.ci/run`
fails when they skipped. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from csms.db.engine import session_factory
from csms.serve import RunningNode, running_node
from csms.web.passwords import hash_password_sync
from csms.web.users import create_user
from tests.conftest import node_settings

DEMO_SITE = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
CHROMIUM = os.environ.get("VOLTHAUS_TEST_CHROMIUM", "/usr/bin/chromium")


@dataclass
class Portal:
    node: RunningNode

    @property
    def url(self) -> str:
        return self.node.http_url

    @property
    def ocpp_url(self) -> str:
        return self.node.ocpp_url

    async def user(
        self, role: str, site: str | None = "lindenhof", account: str | None = None,
        language: str = "de",
    ) -> tuple[str, str]:
        """A user with a password, ready to sign in: (e-mail, password)."""
        email = f"{role}-{secrets.token_hex(4)}@example.org"
        password = secrets.token_urlsafe(12)
        if role == "resident" and account is None:
            account = "a-01"
        async with session_factory(self.node.engine)() as db:
            user, _ = await create_user(
                db, email=email, role=role, site_id=None if role == "admin" else site,
                account_ref=account, language=language, now=datetime.now(UTC))
            user.password_hash = hash_password_sync(password)
            db.add(user)
            await db.commit()
        return email, password

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, follow_redirects=False)


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Portal]:
    settings = node_settings(f"sqlite:///{tmp_path / 'portal.db'}")
    async with running_node(settings, site_file=DEMO_SITE) as node:
        yield Portal(node)


async def sign_in_client(portal: Portal, client: httpx.AsyncClient, email: str,
                         password: str) -> httpx.Response:
    """Sign in through the form as a browser would (GET for the CSRF cookie, then POST)."""
    page = await client.get("/signin")
    token = csrf_of(page.text)
    return await client.post("/signin", data={"csrf": token, "email": email,
                                               "password": password})


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser") is not None:
            # Read by .ci/run from the JUnit report: browser tests must have run there.
            item.user_properties.append(("needs", "browser"))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser: {CHROMIUM} is not installed (Debian package chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


async def signed_in(page: Any, portal: Portal, role: str, **user: Any) -> str:
    """Sign in through the form in the browser; returns the e-mail."""
    email, password = await portal.user(role, **user)
    await page.goto(portal.url + "/signin")
    await page.fill("#f-email", email)
    await page.fill("#f-password", password)
    await page.click("button[type=submit].primary")
    await page.wait_for_load_state()
    return email


# Checks every page must pass, in the browser: each form control labelled, no missing text.
UNLABELLED_CONTROLS = """
() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))
"""
