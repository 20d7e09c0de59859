"""Crash safety: a real `volthaus serve` killed with SIGKILL mid-session and started again goes on
with the station's next message; the bill equals that of a run that was never interrupted."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from csms.charging.models import SessionStatus
from csms.charging.views import session_views, sessions_query
from csms.db.engine import create_engine, session_factory
from csms.simulator.station import SimStation
from tests.csms.charging.conftest import PASSWORDS, ROOT, Box, Clock
from wallet.service import wallet_view


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, db: Path, ocpp_port: int) -> None:
        self.db = db
        self.ocpp_port = ocpp_port
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {**os.environ, "VOLTHAUS_DATABASE_URL": f"sqlite:///{self.db}",
               "VOLTHAUS_LOG_FORMAT": "console"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "csms.cli.main", "serve", "--demo",
             "--http-port", str(free_port()), "--ocpp-port", str(self.ocpp_port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.ocpp_port)
                writer.close()
                return
            except OSError:
                assert self.process.poll() is None, "server exited"
                await asyncio.sleep(0.05)
        raise AssertionError("server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(20)


async def station(port: int, *, boot: bool) -> Box:
    sim = SimStation(f"ws://127.0.0.1:{port}/ocpp", "WB-A-01", password=PASSWORDS["WB-A-01"])
    for _ in range(100):
        try:
            await sim.connect()
            break
        except OSError:
            await asyncio.sleep(0.05)
    if boot:
        assert await sim.boot() == "Accepted"
    return Box(sim, Clock(datetime(2000, 1, 1, tzinfo=UTC)))


READINGS = [(10, 2200), (20, 4400), (30, 6600), (40, 8800), (50, 11000)]


async def test_sigkill_mid_session_bills_like_an_uninterrupted_run(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    port = free_port()
    server = Server(db, port)
    await server.start()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    at = lambda minute: base + timedelta(minutes=minute)  # noqa: E731
    try:
        box = await station(port, boot=True)
        crashed = int((await box.start16("04A2B3C4", 0, at(0))).transaction_id)
        for minute, wh in READINGS[:2]:
            await box.meter16(crashed, wh, at(minute))
        server.kill()  # mid-session, nothing flushed on purpose
        await box.sim.close()
        await server.start()
        box = await station(port, boot=False)  # a 1.6 station reconnects without booting
        # The reading whose answer was lost is sent again, then the next ones.
        await box.meter16(crashed, READINGS[1][1], at(READINGS[1][0]))
        for minute, wh in READINGS[2:]:
            await box.meter16(crashed, wh, at(minute))
        await box.stop16(crashed, 11000, at(51))
        # The same session, never interrupted, an hour later on the same register.
        later = lambda minute: at(minute + 60)  # noqa: E731
        clean = int((await box.start16("04A2B3C4", 11000, later(0))).transaction_id)
        for minute, wh in READINGS:
            await box.meter16(clean, 11000 + wh, later(minute))
        await box.stop16(clean, 22000, later(51))
        await box.sim.close()
    finally:
        server.stop()
    engine = create_engine(f"sqlite:///{db}")
    try:
        async with session_factory(engine)() as session:
            rows = {row.id: row for row in await session_views(session, sessions_query())}
            view = await wallet_view(session, "a-01", at=later(52))
    finally:
        await engine.dispose()
    first, second = rows[crashed], rows[clean]
    assert first.status == second.status == SessionStatus.COMPLETED
    assert first.energy_wh == second.energy_wh == 11000
    assert first.gross == second.gross and first.lines == second.lines
    assert first.gross is not None and first.gross > 0
    assert view.balance == Decimal("50.00") - 2 * first.gross
    assert view.holds == Decimal("0.00")
