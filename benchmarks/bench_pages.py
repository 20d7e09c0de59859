"""Web pages: how long each listed page takes on the demo site, for each role.

The node runs the demo site (examples/demo-site.yaml) with its emulated devices on SQLite, as
`make run` does. Two figures per page: the server's answer (httpx, 20 requests after one warm-up:
p50 / p95 / max), and the page in headless Chromium (navigation start to the load event, with
its style sheet and script; median of 5), where /usr/bin/chromium exists. Target: under 300 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml"
ROUNDS = 20
# Pages with a parameter, measured too: the tariff editor computes its preview on every load.
EXTRA_PAGES = [("owner", "/owner/tariffs/wallbox"), ("installer", "/installer/stations/WB-A-01")]
CHROMIUM = Path("/usr/bin/chromium")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _sign_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    page = await client.get("/signin")
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    token = page.text[start:page.text.index('"', start)]
    answer = await client.post("/signin", data={"csrf": token, "email": email,
                                                "password": password})
    assert answer.status_code == 303, answer.text[:200]


async def _browser_times(url: str, role_logins: dict[str, tuple[str, str]],
                         pages: list[tuple[str, str]]) -> dict[str, float]:
    from playwright.async_api import async_playwright

    times: dict[str, float] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=["--no-sandbox"])
        for role in sorted({role for role, _ in pages}):
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page: Any = await context.new_page()
            if role != "anonymous":
                email, password = role_logins[role]
                await page.goto(url + "/signin")
                await page.fill("#f-email", email)
                await page.fill("#f-password", password)
                await page.click("button[type=submit].primary")
                await page.wait_for_load_state()
            for _, path in [p for p in pages if p[0] == role]:
                samples = []
                for _ in range(5):
                    await page.goto(url + path)
                    samples.append(await page.evaluate(
                        "performance.getEntriesByType('navigation')[0].loadEventEnd"))
                times[f"{role} {path}"] = statistics.median(samples)
            await context.close()
        await browser.close()
    return times


async def run() -> None:
    from csms.serve import running_node
    from csms.settings import Settings
    from csms.simulator.demo_site import demo_devices
    from csms.simulator.demo_users import ensure_demo_users
    from csms.web.mount import listed_pages
    from csms.web.passwords import hash_password
    from csms.web.users import create_user

    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/pages.db", host="127.0.0.1",
                            http_port=0, ocpp_port=0, log_level="WARNING")
        async with demo_devices(document), running_node(settings, site_file=DEMO) as node:
            from datetime import UTC, datetime

            from csms.db.engine import session_factory

            await ensure_demo_users(node.engine, "lindenhof", datetime.now(UTC))
            logins: dict[str, tuple[str, str]] = {}
            async with session_factory(node.engine)() as db:
                for role in ("owner", "installer", "resident", "admin"):
                    email = f"bench-{role}@example.org"
                    user, _ = await create_user(
                        db, email=email, role=role,
                        site_id=None if role == "admin" else "lindenhof",
                        account_ref="a-01" if role == "resident" else None,
                        now=datetime.now(UTC))
                    user.password_hash = await hash_password("bench-password-1")
                    db.add(user)
                    logins[role] = (email, "bench-password-1")
                await db.commit()
            await asyncio.sleep(3)  # the demo devices' first readings and polls
            pages = listed_pages() + EXTRA_PAGES
            print(f"{len(pages)} pages, demo site on SQLite with its emulated devices")
            print(f"{'page':<44} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
            worst = 0.0
            for role, path in pages:
                async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as client:
                    if role != "anonymous":
                        await _sign_in(client, *logins[role])
                    answer = await client.get(path)
                    if answer.status_code >= 400:
                        print(f"{role + ' ' + path:<44} HTTP {answer.status_code}")
                        continue
                    samples = []
                    for _ in range(ROUNDS):
                        started = time.perf_counter()
                        await client.get(path)
                        samples.append((time.perf_counter() - started) * 1000)
                worst = max(worst, max(samples))
                print(f"{role + ' ' + path:<44} {statistics.median(samples):7.1f} "
                      f"{_quantile(samples, 0.95):7.1f} {max(samples):7.1f}")
            print(f"slowest server answer: {worst:.1f} ms (target: a page under 300 ms)")
            if CHROMIUM.exists():
                times = await _browser_times(node.http_url, logins, pages)
                print(f"{'page in Chromium (load event)':<44} {'ms':>7}")
                for name, value in times.items():
                    print(f"{name:<44} {value:7.1f}")
                print(f"slowest page in Chromium: {max(times.values()):.1f} ms")


def main() -> None:
    asyncio.run(run())
