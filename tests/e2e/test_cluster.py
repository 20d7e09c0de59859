"""Three `volthaus serve` processes on one PostgreSQL database and one Redis, behind HAProxy
(when installed): stations spread across the nodes, commands reach whichever node holds a
station, a station's newest connection wins across nodes, and a node killed with SIGKILL in the
middle of charging sessions loses nothing: its stations reconnect to the others, every session
is billed once, the meter polling moves to a surviving node, and the ledger balances."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col, func, select

from billing.models import PaidUse, UseStatus
from csms.auth.tokens import create_token
from csms.db.engine import create_engine, session_factory
from csms.db.scratch import scratch_database
from csms.deploy.local_cluster import LocalCluster, free_port
from csms.simulator.demo_site import demo_devices
from csms.simulator.station import Session, SimStation
from meters.models import MeterReading
from wallet.ledger import trial_balance

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

STATIONS = [(f"WB-C-{n}", "ocpp1.6" if n % 2 else "ocpp2.0.1") for n in range(1, 7)]
PASSWORD = "cluster-password-1"


def site_document(meter_port: int) -> dict[str, Any]:
    return {
        "site": {"id": "cluster", "name": "Cluster", "timezone": "Europe/Berlin",
                 "currency": "EUR", "country": "DE"},
        "tariffs": [
            {"id": "wb", "currency": "EUR", "vat_percent": "19",
             "components": [{"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.40"}]}]},
            {"id": "home", "currency": "EUR", "vat_percent": "19",
             "components": [{"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.30"}]}]},
        ],
        "accounts": [{"id": f"a-{n}", "name": f"Flat {n}", "opening_balance": "100.00"}
                     for n in range(1, 7)],
        "badges": [{"uid": f"04AABB{n:02X}", "account": f"a-{n}"} for n in range(1, 7)],
        "stations": [{"id": sid, "protocol": protocol, "security_profile": 1,
                      "password": PASSWORD, "connectors": 1, "tariff": "wb"}
                     for sid, protocol in STATIONS],
        "meters": [{"id": "m-1", "account": "a-1", "profile": "eastron-sdm630",
                    "modbus": {"host": "127.0.0.1", "port": meter_port, "unit": 1},
                    "tariff": "home", "poll_s": 1}],
    }


def scrape(text: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


async def node_figures(cluster: LocalCluster) -> list[dict[str, float]]:
    figures = []
    async with httpx.AsyncClient(timeout=5) as client:
        for node in cluster.members:
            if not node.running:
                figures.append({})
                continue
            try:
                figures.append(scrape((await client.get(node.http_url + "/metrics")).text))
            except httpx.HTTPError:
                figures.append({})
    return figures


async def wait_until(check: Any, timeout: float = 30, what: str = "") -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.3)


@pytest.fixture
def cluster_database(postgres_run_url: str) -> Any:
    with scratch_database(postgres_run_url, "cluster") as url:
        yield url


async def test_three_nodes_share_stations_survive_a_killed_node_and_bill_once(
    tmp_path: Path, cluster_database: str, redis_url: str,
) -> None:
    meter_port = free_port()
    document = site_document(meter_port)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(document))
    namespace = f"vh-cluster-{datetime.now(UTC).strftime('%H%M%S%f')}"
    cluster = LocalCluster(cluster_database, redis_url, nodes=3, site_file=site_file,
                           settings={"VOLTHAUS_DUTY_LEASE_S": "2",
                                     "VOLTHAUS_HEARTBEAT_INTERVAL_S": "10",
                                     "VOLTHAUS_REDIS_NAMESPACE": namespace},
                           folder=tmp_path / "cluster")
    (tmp_path / "cluster").mkdir()
    stations: dict[str, SimStation] = {}
    sessions: dict[str, Session] = {}
    async with demo_devices(document), cluster:
        if shutil.which("haproxy"):
            assert cluster.proxy_ocpp_port is not None, "HAProxy did not start"
        # Six stations through the proxy: spread over the three nodes.
        for sid, protocol in STATIONS:
            station = SimStation(cluster.ocpp_url, sid, protocol=protocol, password=PASSWORD)
            await station.connect()
            assert await station.boot() == "Accepted"
            stations[sid] = station
        figures = await node_figures(cluster)
        per_node = [f.get("volthaus_stations_connected", 0) for f in figures]
        assert sum(per_node) == 6
        if cluster.proxy_ocpp_port is not None:
            assert all(count >= 1 for count in per_node), per_node
        # Exactly one node runs the device loops.
        assert sum(f.get("volthaus_duty_held", 0) for f in figures) == 1

        # An operator command through any node reaches each station wherever it is held.
        engine = create_engine(cluster_database)
        async with session_factory(engine)() as db:
            token = await create_token(db, role="admin", now=datetime.now(UTC))
            await db.commit()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=cluster.http_url, timeout=30,
                                     headers=headers) as api:
            for sid, _ in STATIONS:
                payload = {"requestedMessage": "Heartbeat"}
                answer = await api.post(f"/api/v1/stations/{sid}/commands/TriggerMessage",
                                        json=payload)
                assert answer.status_code == 200, answer.text

        # A session on every station, some energy, then the node holding the duty is killed.
        for n, (sid, _) in enumerate(STATIONS, start=1):
            station = stations[sid]
            # Twenty simulated minutes pass in moments: the clock is back-dated to fit.
            station.compress_time(1200, 0.001)
            sessions[sid] = await station.start(f"04AABB{n:02X}")
            assert sessions[sid].accepted
            await station.wait(600, 0.001)
            await station.meter(sessions[sid], 7_400, 600)
        readings_before = await count_readings(engine)
        victim = next(i for i, f in enumerate(figures) if f.get("volthaus_duty_held"))
        cluster.kill(victim)
        # Its stations lose their websocket; they reconnect through the proxy (or to a
        # survivor) and carry on with the same transactions.
        survivors = [n for i, n in enumerate(cluster.members) if i != victim]
        for sid, station in stations.items():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(station.heartbeat(), 2)
            if station.closed.is_set() or station.connection.close_code is not None:
                base = cluster.ocpp_url if cluster.proxy_ocpp_port else survivors[0].ocpp_url
                station.url = f"{base}/{sid}"
                await reconnect(station)
            await station.wait(600, 0.001)
            await station.meter(sessions[sid], 7_400, 600)
            await station.stop(sessions[sid])

        # The device duty moved: a survivor polls the meter now.
        async def duty_moved() -> bool:
            figures = await node_figures(cluster)
            return sum(f.get("volthaus_duty_held", 0) for f in figures) == 1

        await wait_until(duty_moved, what="a survivor takes the device loops")
        await wait_until(lambda: more_readings(engine, readings_before + 3),
                         what="meter readings continue")

        # Every session billed once; the ledger balances to the cent.
        async def all_billed() -> bool:
            async with session_factory(engine)() as db:
                done = (await db.exec(select(func.count()).select_from(PaidUse).where(
                    col(PaidUse.kind) == "charging",
                    col(PaidUse.status) == UseStatus.COMPLETED))).one()
                return done == 6

        await wait_until(all_billed, what="six completed sessions")
        async with session_factory(engine)() as db:
            assert await trial_balance(db) == 0
            uses = (await db.exec(select(PaidUse).where(col(PaidUse.kind) == "charging"))).all()
            assert len(uses) == 6
        for station in stations.values():
            await station.close()

        # The same station connecting to two nodes: the newest connection wins.
        a, b = survivors[0], survivors[1]
        first = SimStation(a.ocpp_url, "WB-C-1", protocol="ocpp1.6", password=PASSWORD)
        second = SimStation(b.ocpp_url, "WB-C-1", protocol="ocpp1.6", password=PASSWORD)
        await first.connect()
        await first.boot()
        await second.connect()
        await second.boot()
        await asyncio.wait_for(first.closed.wait(), 15)
        assert await second.heartbeat()
        await second.close()
        await engine.dispose()


async def reconnect(station: SimStation) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                await station.close()
                await station.connect()
                await station.boot()
                return
            except Exception:
                await asyncio.sleep(0.5)


async def count_readings(engine: Any) -> int:
    async with session_factory(engine)() as db:
        return int((await db.exec(select(func.count()).select_from(MeterReading))).one())


async def more_readings(engine: Any, at_least: int) -> bool:
    return await count_readings(engine) >= at_least

