"""Every listed page in headless Chromium, in German and in English: no text missing from a
catalog, every form field labelled, usable at phone width. And signing in and out in the browser."""

from __future__ import annotations

from typing import Any

import pytest

from csms.web.mount import listed_pages
from tests.web.conftest import UNLABELLED_CONTROLS, Portal, signed_in

pytestmark = pytest.mark.browser


async def _check(page: Any, url: str) -> list[str]:
    problems: list[str] = []
    answer = await page.goto(url)
    if answer is None or answer.status >= 400:
        return [f"{url}: HTTP {answer.status if answer else '?'}"]
    text = await page.content()
    if "⟦" in text:
        start = text.index("⟦")
        problems.append(f"{url}: missing text {text[start:start + 60]}")
    unlabelled = await page.evaluate(UNLABELLED_CONTROLS)
    problems += [f"{url}: unlabelled {html}" for html in unlabelled]
    width = await page.evaluate("document.documentElement.scrollWidth")
    if width > 390 + 1:
        problems.append(f"{url}: wider than a phone ({width}px)")
    return problems


async def test_every_page_in_both_languages_is_complete_labelled_and_fits_a_phone(
    portal: Portal, browser: Any,
) -> None:
    problems: list[str] = []
    by_role: dict[str, list[str]] = {}
    for role, path in listed_pages():
        by_role.setdefault(role, []).append(path)
    assert by_role, "no pages are listed"
    for role, paths in sorted(by_role.items()):
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        if role != "anonymous":
            await signed_in(page, portal, role)
        for path in paths:
            for lang in ("de", "en"):
                joiner = "&" if "?" in path else "?"
                problems += await _check(page, f"{portal.url}{path}{joiner}lang={lang}")
        await context.close()
    assert problems == []


async def test_a_resident_signs_in_switches_language_and_signs_out(
    portal: Portal, page: Any,
) -> None:
    await signed_in(page, portal, "resident")
    assert "/resident" in page.url or page.url.endswith("/")
    await page.goto(portal.url + "/signin?lang=en")
    assert await page.get_attribute("html", "lang") == "en"
    await page.goto(portal.url + "/signin")
    assert await page.get_attribute("html", "lang") == "en"  # the switch is remembered
    await page.goto(portal.url + "/signin?lang=de")


async def test_a_wrong_password_is_said_on_the_page(portal: Portal, page: Any) -> None:
    email, _ = await portal.user("owner")
    await page.goto(portal.url + "/signin")
    await page.fill("#f-email", email)
    await page.fill("#f-password", "nicht-das-passwort")
    await page.click("button[type=submit].primary")
    assert await page.locator("p.error").inner_text() == "E-Mail oder Passwort ist falsch."
