"""Commands reach a station whose websocket another server process holds (Redis bus)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from csms.auth.tokens import create_token
from csms.db.engine import session_factory
from csms.serve import running_node
from csms.simulator.station import SimStation
from tests.conftest import node_settings
from tests.csms.ocpp.conftest import PASSWORD, add_site, add_station

ROOT = Path(__file__).resolve().parents[3]


async def test_command_through_redis_to_another_process(tmp_path: Path, redis_url: str) -> None:
    database = f"sqlite:///{tmp_path / 'two.db'}"
    settings = node_settings(database, redis_url=redis_url, node_id=f"api-{uuid.uuid4().hex[:6]}")
    async with running_node(settings) as api_node:
        await add_site(api_node.engine)
        station_id = f"WB-{uuid.uuid4().hex[:8]}"
        await add_station(api_node.engine, station_id, protocol="ocpp2.0.1")
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.csms.ocpp.holder_process",
            database,
            redis_url,
            f"holder-{uuid.uuid4().hex[:6]}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert holder.stdout is not None
            port = None
            async with asyncio.timeout(30):
                while port is None:
                    line = (await holder.stdout.readline()).decode()
                    assert line, "holder process ended"
                    if line.startswith("PORT "):
                        port = int(line.split()[1])
            station = SimStation(
                f"ws://127.0.0.1:{port}/ocpp", station_id, protocol="ocpp2.0.1", password=PASSWORD
            )
            async with station:
                await station.boot()
                async with session_factory(api_node.engine)() as session:
                    token = await create_token(session, role="admin", now=datetime.now(UTC))
                    await session.commit()
                async with httpx.AsyncClient(base_url=api_node.http_url, timeout=30) as client:
                    response = await client.post(
                        f"/api/v1/stations/{station_id}/commands/Reset",
                        json={"type": "OnIdle"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                assert response.status_code == 200, response.text
                assert response.json() == {"status": "Accepted"}
                # The local list pushed after the boot may arrive before or after the Reset.
                assert ("Reset", {"type": "OnIdle"}) in station.memory.received
        finally:
            if holder.stdin is not None:
                holder.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await holder.wait()
            except TimeoutError:
                holder.kill()
                await holder.wait()
