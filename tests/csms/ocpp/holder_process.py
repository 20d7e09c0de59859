"""A second server process holding stations: `python -m tests.csms.ocpp.holder_process DB REDIS`.

Prints `PORT <n>` once listening and runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from csms.bus import open_bus
from csms.db.engine import create_engine
from csms.ocpp.server import OcppServer, ServerOptions


async def main(database_url: str, redis_url: str, node_id: str) -> None:
    engine = create_engine(database_url)
    async with open_bus(redis_url, node_id=node_id) as bus:
        server = OcppServer(
            engine=engine,
            bus=bus,
            clock=lambda: datetime.now(UTC),
            heartbeat_interval_s=300,
            pending_retry_interval_s=60,
            options=ServerOptions(port=0),
        )
        await server.start()
        print(f"PORT {server.port}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await server.stop()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
