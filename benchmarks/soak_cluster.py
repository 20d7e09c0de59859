"""Soak (`make soak`, long; not part of `make bench`): issue 19's case.

N profile-1 stations (every station its own password; half 1.6, half 2.0.1) across three
`volthaus serve` nodes behind HAProxy on one PostgreSQL and one Redis, driven for M minutes with
the fleet mix (heartbeats, status, authorize, sessions with meter values every 10 s); in the
middle one node is killed with SIGKILL and restarted a minute later. Reported: messages and
throughput, p50/p99 per action, errors, the time until every station of the killed node is back
(from the kill to its last station's accepted boot elsewhere), the nodes' memory per connection,
and the wallet trial balance at the end (must be exactly zero).

VOLTHAUS_SOAK_STATIONS (10,000), VOLTHAUS_SOAK_MINUTES (30), VOLTHAUS_BENCH_DATABASE_URL (a
PostgreSQL server; default postgresql://postgres@127.0.0.1:5432/test), VOLTHAUS_BENCH_REDIS_URL
(redis://127.0.0.1:6379/0). The simulator runs in this process, on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_fleet import password_of
from benchmarks.bench_ocpp import _raise_nofile, _rss_kib

STATIONS = int(os.environ.get("VOLTHAUS_SOAK_STATIONS", "10000"))
MINUTES = float(os.environ.get("VOLTHAUS_SOAK_MINUTES", "30"))
SERVER = os.environ.get("VOLTHAUS_BENCH_DATABASE_URL",
                        "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("VOLTHAUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = "SOAK-"
BADGES = 500


def site_document() -> dict[str, Any]:
    from csms.documents import read_document

    demo = read_document(Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml")
    return {
        "site": {**demo["site"], "id": "soak"},
        "buildings": demo["buildings"],
        "tariffs": demo["tariffs"],
        "accounts": [{"id": f"h-{n:04d}", "name": f"Household {n}", "building": "A",
                      "opening_balance": "500.00"} for n in range(BADGES)],
        "badges": [{"uid": f"04{n:06X}", "account": f"h-{n:04d}"} for n in range(BADGES)],
        "stations": [{"id": f"{PREFIX}{n:05d}", "building": "A",
                      "protocol": "ocpp1.6" if n % 2 == 0 else "ocpp2.0.1",
                      "security_profile": 1, "password": password_of(f"{PREFIX}{n:05d}"),
                      "connectors": 1, "tariff": "wallbox"} for n in range(STATIONS)],
    }


async def run(database_url: str) -> dict[str, Any]:
    import ocpp.messages
    import yaml

    from csms.db.engine import create_engine, session_factory
    from csms.deploy.local_cluster import LocalCluster
    from csms.simulator.fleet import FleetPlan, FleetReport, connect_fleet, drive
    from csms.simulator.station import SimStation
    from wallet.ledger import trial_balance

    ocpp.messages.ASYNC_VALIDATION = False  # the simulator's checks would be the bottleneck
    folder = Path(tempfile.mkdtemp(prefix="vh-soak-"))
    site_file = folder / "site.yaml"
    site_file.write_text(yaml.safe_dump(site_document()))
    namespace = f"vh-soak-{uuid.uuid4().hex[:8]}"
    cluster = LocalCluster(database_url, REDIS, nodes=3, site_file=site_file, folder=folder,
                           settings={"VOLTHAUS_REDIS_NAMESPACE": namespace,
                                     "VOLTHAUS_LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    async with cluster:
        setup_s = time.perf_counter() - started
        duration = MINUTES * 60
        plan = FleetPlan(url=cluster.ocpp_url, count=STATIONS, protocol="mixed",
                         id_prefix=PREFIX, password_for=password_of, heartbeat_s=60,
                         meter_interval_s=10, charge_s=120, charging_share=0.3,
                         duration_s=duration, connect_rate=300, check_schemas=False)
        report = FleetReport()
        stations = await connect_fleet(plan, report)
        mix = FleetReport()
        for station in stations:
            station.record_latency = mix.record
        until = time.monotonic() + duration
        kill_at = time.monotonic() + duration / 2
        back: list[float] = []
        killed: dict[str, Any] = {}

        async def soak(station: SimStation) -> None:
            while time.monotonic() < until:
                # A station notices a dropped websocket at once (TCP close), not at its next
                # message: the drive ends when the connection does.
                driving = asyncio.create_task(drive(station, plan, mix, until))
                closed = asyncio.create_task(station.closed.wait())
                await asyncio.wait({driving, closed}, return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
                if not driving.done():
                    driving.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await driving
                if time.monotonic() >= until:
                    return
                # Dropped (its node was killed): back through the proxy to a survivor.
                lost_at = time.monotonic()
                for _attempt in range(120):
                    try:
                        await station.close()
                        await station.connect()
                        if await station.boot() == "Accepted":
                            back.append(time.monotonic() - killed.get("at", lost_at))
                            break
                    except Exception as error:
                        mix.errors[f"reconnect {type(error).__name__}"] += 1
                        await asyncio.sleep(0.5)

        async def chaos() -> None:
            await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
            killed["rss_kib"] = [_rss_kib(n.process.pid) for n in cluster.members
                                 if n.process is not None]
            killed["per_node"] = await _connected(cluster)
            killed["at"] = time.monotonic()
            cluster.kill(1)
            await asyncio.sleep(60)
            await cluster.start_node(1)

        await asyncio.gather(chaos(), *(soak(s) for s in stations))
        per_action = {a: {"n": len(v), "p50_ms": round(mix.percentile(0.5, a) * 1000, 1),
                          "p99_ms": round(mix.percentile(0.99, a) * 1000, 1)}
                      for a, v in mix.latencies.items()}
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        await asyncio.sleep(5)
        engine = create_engine(database_url)
        async with session_factory(engine)() as db:
            balance = await trial_balance(db)
        await engine.dispose()
    rss = killed.get("rss_kib", [])
    connections = killed.get("per_node", [])
    return {
        "stations": STATIONS, "minutes": MINUTES, "setup_s": round(setup_s, 1),
        "connected": report.connected, "booted": report.booted, "failed": report.failed,
        "boot_storm_s": round(report.boot_seconds, 1),
        "messages": mix.messages, "rate_per_s": round(mix.messages / (MINUTES * 60), 1),
        "p50_ms": round(mix.percentile(0.5) * 1000, 1),
        "p99_ms": round(mix.percentile(0.99) * 1000, 1),
        "actions": per_action, "errors": dict(mix.errors),
        "killed_node_stations": connections[1] if len(connections) > 1 else None,
        "all_back_after_kill_s": round(max(back), 1) if back else None,
        "reconnected": len(back),
        "rss_mib_per_node": [round(r / 1024) for r in rss],
        "kib_per_connection": (round(sum(rss) / max(1, sum(connections)), 1)
                               if rss and connections else None),
        "trial_balance": str(balance),
    }


async def _connected(cluster: Any) -> list[int]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    counts = []
    async with httpx.AsyncClient(timeout=10) as client:
        for node in cluster.members:
            text = (await client.get(node.http_url + "/metrics")).text
            value = next((s.value for f in text_string_to_metric_families(text)
                          for s in f.samples if s.name == "volthaus_stations_connected"), 0)
            counts.append(int(value))
    return counts


def main() -> None:
    from csms.db.scratch import scratch_database

    _raise_nofile()
    with scratch_database(SERVER, "soak") as url:
        result = asyncio.run(run(url))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
