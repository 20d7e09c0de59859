"""A laundry cycle through the whole node over real sockets: a reader's tap over HTTP, the node's
own controller loop switching and reading an emulated Shelly Gen2 on 127.0.0.1 in real time, the
amenities list as residents see it, the wallet debited once, and "laundry done" by e-mail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from csms.serve import running_node
from csms.simulator.shelly import ShellyGen2Emulator
from tests.conftest import Api, Inbox, node_settings

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
FAST_CYCLE = {"poll_s": 1, "start_w": 10, "end_w": 5, "end_after_s": 2,
              "abandon_after_s": 60, "max_s": 600}


async def eventually(check: Callable[[], Awaitable[Any]], *, within_s: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy (the node works in real time)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within_s} s: {check.__name__}")
        await asyncio.sleep(0.2)


def demo_site_on(shelly: ShellyGen2Emulator, tmp_path: Path) -> Path:
    """The demo site file with its machines on the emulated Shelly, with quick cycles."""
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    for amenity in document["amenities"]:
        amenity["relay"]["port"] = shelly.port
        amenity["cycle"] = FAST_CYCLE
    document["meters"] = []  # no Modbus gateways here
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    return site_file


@pytest.fixture
async def laundry_node(
    tmp_path: Path, smtp_server: tuple[int, Inbox]
) -> Any:
    port, inbox = smtp_server
    async with ShellyGen2Emulator(channels=2) as shelly:
        site_file = demo_site_on(shelly, tmp_path)
        settings = node_settings(f"sqlite:///{tmp_path / 'node.db'}", smtp_host="127.0.0.1",
                                 smtp_port=port, alert_interval_s=0.2)
        async with running_node(settings, site_file=site_file) as node, httpx.AsyncClient(
            base_url=node.http_url, timeout=30
        ) as client:
            yield Api(node, client), shelly, inbox


async def test_tap_run_and_done_over_the_wire(laundry_node: Any) -> None:
    api, shelly, inbox = laundry_node
    reader = await api.token("reader", site="lindenhof", reader="reader-1")
    keller = await api.token("resident", site="lindenhof", account="a-01")
    yilmaz = await api.token("resident", site="lindenhof", account="a-02")
    owner = await api.token("owner", site="lindenhof")

    async def machines(headers: dict[str, str]) -> dict[str, Any]:
        answer = await api.client.get("/api/v1/sites/lindenhof/amenities", headers=headers)
        assert answer.status_code == 200, answer.text
        return {m["id"]: m for m in answer.json()}

    before = await machines(keller)
    assert before["washer-1"]["state"] == "free" and before["dryer-1"]["kind"] == "dryer"

    tap = await api.client.post("/api/v1/readers/reader-1/taps", headers=reader,
                                json={"id_tag": "04A2B3C4", "amenity": "washer-1"})
    assert tap.status_code == 200, tap.text
    body = tap.json()
    assert set(body) == {"decision", "amenity", "reason", "message"}
    assert (body["decision"], body["amenity"]) == ("accepted", "washer-1")
    assert set(body["message"]) == {"de", "en"}
    assert shelly.output(0) is True
    assert (await machines(owner))["washer-1"]["state"] == "authorised"

    shelly.set_power(0, 2000)

    async def running() -> dict[str, Any] | None:
        washer = (await machines(keller))["washer-1"]
        cycle = washer.get("cycle") or {}
        if washer["state"] == "running" and cycle.get("cost_gross"):
            return washer
        return None

    washer = await eventually(running)
    assert washer["cycle"]["mine"] is True and washer["cycle"]["account"] == "a-01"
    neighbour_view = (await machines(yilmaz))["washer-1"]
    assert neighbour_view["state"] == "running"
    assert neighbour_view["cycle"]["mine"] is False
    assert neighbour_view["cycle"]["account"] is None
    assert neighbour_view["cycle"]["cost_gross"] is None

    refused = await api.client.post("/api/v1/readers/reader-1/taps", headers=reader,
                                    json={"id_tag": "8A1F2C3D", "amenity": "washer-1"})
    assert refused.json()["decision"] == "refused"

    await asyncio.sleep(1.5)
    shelly.set_power(0, 1)

    async def free_again() -> bool:
        return (await machines(keller))["washer-1"]["state"] == "free"

    await eventually(free_again)
    assert shelly.output(0) is False
    wallet = await api.client.get("/api/v1/accounts/a-01/wallet", headers=keller)
    assert Decimal(wallet.json()["balance"]) == Decimal("47.62")

    async def done_mail() -> bool:
        return any("Wäsche fertig" in str(mail["Subject"]) for mail in inbox.mails)

    await eventually(done_mail)
    mail = next(m for m in inbox.mails if "Wäsche fertig" in str(m["Subject"]))
    assert mail["To"] == "keller@example.org"
    assert "2,38" in mail.get_content()


async def test_node_restart_resumes_an_open_cycle(tmp_path: Path) -> None:
    async with ShellyGen2Emulator(channels=2) as shelly:
        site_file = demo_site_on(shelly, tmp_path)
        settings = node_settings(f"sqlite:///{tmp_path / 'node.db'}")
        async with running_node(settings, site_file=site_file) as node, httpx.AsyncClient(
            base_url=node.http_url, timeout=30
        ) as client:
            api = Api(node, client)
            admin = await api.admin()
            tap = await client.post("/api/v1/readers/reader-1/taps", headers=admin,
                                    json={"id_tag": "B37E09D1", "amenity": "dryer-1"})
            assert tap.json()["decision"] == "accepted"
            shelly.set_power(1, 1800)

            async def running() -> bool:
                answer = await client.get("/api/v1/sites/lindenhof/amenities", headers=admin)
                return {m["id"]: m for m in answer.json()}["dryer-1"]["state"] == "running"

            await eventually(running)
        # The node is gone; the machine runs on (its dead-man timer is minutes long).
        assert shelly.output(1) is True
        async with running_node(settings) as node, httpx.AsyncClient(
            base_url=node.http_url, timeout=30
        ) as client:
            api = Api(node, client)
            admin = await api.admin()
            shelly.set_power(1, 0)

            async def settled() -> dict[str, Any] | None:
                answer = await client.get("/api/v1/accounts/b-01/wallet", headers=admin,
                                          params={"site": "lindenhof"})
                body = answer.json()
                return body if Decimal(body["balance"]) < Decimal("40.00") else None

            wallet = await eventually(settled)
            assert Decimal(wallet["balance"]) == Decimal("40.00") - Decimal("2.38")
            assert Decimal(wallet["holds"]) == Decimal("0.00")
            assert shelly.output(1) is False


async def test_simulate_laundry_follows_a_cycle_to_the_end(laundry_node: Any) -> None:
    """`volthaus simulate laundry`'s client: the tap, each state, the wallet at the end."""
    import io

    from csms.simulator.laundry_demo import LaundryPlan, run_laundry_demo

    api, shelly, _ = laundry_node
    admin = await api.admin()
    out = io.StringIO()
    plan = LaundryPlan(api_url=api.node.http_url, token=admin["Authorization"][7:],
                       site="lindenhof", reader="reader-1", amenity="dryer-1",
                       badge="5C6D7E8F", account="b-02", language="en", interval_s=0.2,
                       timeout_s=30)
    follow = asyncio.create_task(run_laundry_demo(plan, out))
    await eventually(lambda: asyncio.sleep(0, result=shelly.output(1)))
    shelly.set_power(1, 1500)
    await eventually(lambda: asyncio.sleep(0, result="running" in out.getvalue()))
    await asyncio.sleep(1.5)
    shelly.set_power(1, 0)
    assert await asyncio.wait_for(follow, 30) == 0
    text = out.getvalue()
    assert "tap 5C6D7E8F at dryer-1: accepted (accepted): Dryer dryer-1 is ready" in text
    assert "dryer-1: authorised" in text and "dryer-1: running" in text
    assert text.rstrip().endswith("wallet b-02: balance 22.62 EUR")
