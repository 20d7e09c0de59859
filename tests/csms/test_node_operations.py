"""What an operator's load balancer and Prometheus see of a node: readiness, metrics scraped over
HTTP, and a stop that drains (not ready, stations told to go with 1001 after their answer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from csms.serve import running_node
from csms.simulator.station import SimStation
from tests.conftest import node_settings
from tests.csms.ocpp.conftest import PASSWORD, add_site, add_station


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_ready_metrics_and_a_draining_stop(tmp_path: Path) -> None:
    settings = node_settings(f"sqlite:///{tmp_path / 'ops.db'}")
    station: SimStation | None = None
    async with running_node(settings) as node:
        await add_site(node.engine)
        await add_station(node.engine, "WB-OPS-1", protocol="ocpp2.0.1")
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as client:
            assert (await client.get("/readyz")).json() == {"status": "ready"}
            station = SimStation(node.ocpp_url, "WB-OPS-1", protocol="ocpp2.0.1",
                                 password=PASSWORD)
            await station.connect()
            await station.boot()
            await station.heartbeat()
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200
            values = samples(scraped.text)
            assert values[("volthaus_stations_connected", ())] == 1
            assert values[("volthaus_ready", ())] == 1
            key = ("volthaus_ocpp_messages_total", (("action", "BootNotification"),
                                                    ("protocol", "ocpp2.0.1"), ("result", "ok")))
            assert values[key] >= 1
            assert ("volthaus_alert_backlog", ()) in values
            assert values[("volthaus_open_uses", (("kind", "charging"),))] == 0
    # The node stopped: the station was told to go away (1001), so it reconnects elsewhere.
    assert station is not None
    await asyncio.wait_for(station.closed.wait(), 10)
    assert station.connection.close_code == 1001
    assert node.app.state.ready is False
