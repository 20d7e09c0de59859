"""Fleet capacity with real credentials (`python -m benchmarks fleet`): issue 12's case.

One site of security-profile-1 stations, each with its own password, imported from a site
file with plain passwords, and 2,000 households with badges (a 2,000-entry local list); one
server process pinned to one core, the simulator in another on the other core; SQLite, then
PostgreSQL when VOLTHAUS_BENCH_DATABASE_URL (or VOLTHAUS_TEST_DATABASE_URL) names a server on
127.0.0.1 (a scratch database is made and dropped). Figures:

* import of the site file (N stations with plain passwords, 2,000 accounts and badges);
* boot storm after the import: 2,000 profile-1 stations connecting at once (as fast as the
  simulator opens them), time until every one is Accepted, then until they hold the local list
  (the simulator, converting 2,000 entries per list, is the slower side there);
* the same storm on a freshly started server (verified-login records: no scrypt);
* restart: the server process is replaced, all N stations reconnect at once: time until every
  one is Accepted, and the server's CPU for it;
* idle: the server's CPU over 20 s with the whole fleet connected and quiet (after waiting up to
  30 s for the background scrypt of imported passwords, then until the after-boot work of the
  reconnect is done);
* extra line, labelled: the same boot storm with 2,000 profile-0 stations (no password).

N: VOLTHAUS_BENCH_FLEET (default 10,000); the storm: VOLTHAUS_BENCH_STORM (default 2,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bench_ocpp import _drain, _free_port, _raise_nofile, _rss_kib, _stop, _wait_line
from benchmarks.fleet_site import (
    BADGES,
    LOGIN_KEY,
    PROFILE_1,
    SERVER_CORE,
    SIMULATOR_CORE,
    import_site_file,
    password_of,
    station_id,
    unhashed_passwords,
)
from benchmarks.fleet_site import cpu_s as _cpu_s
from benchmarks.fleet_site import pin as _pin

ROOT = Path(__file__).resolve().parents[1]
FLEET = int(os.environ.get("VOLTHAUS_BENCH_FLEET", "10000"))
STORM = min(int(os.environ.get("VOLTHAUS_BENCH_STORM", "2000")), FLEET)


async def _import(database_url: str) -> float:
    return await import_site_file(database_url, FLEET, STORM)


# the server process


async def _serve(database_url: str, port: int) -> None:
    from csms.bus import LocalBus
    from csms.collector import tuned_collector
    from csms.db.engine import create_engine
    from csms.logging import configure_logging
    from csms.ocpp.server import OcppServer, ServerOptions

    configure_logging("WARNING", "console")
    _pin(SERVER_CORE)
    engine = create_engine(database_url)
    bus = LocalBus(node_id="bench")
    await bus.start()
    server = OcppServer(
        engine=engine, bus=bus, clock=lambda: datetime.now(UTC), heartbeat_interval_s=300,
        pending_retry_interval_s=60,
        options=ServerOptions(port=port, login_key=bytes.fromhex(LOGIN_KEY)),
    )
    await server.start()
    # As `volthaus serve` does once started.
    async with tuned_collector(server.fleet_count):
        print("READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    await server.stop()
    await bus.stop()
    await engine.dispose()


# the simulator process: commands on stdin, one JSON answer line each


async def _simulate(url: str) -> None:
    import ocpp.messages

    from csms.collector import tune_collector
    from csms.simulator.station import SimStation

    ocpp.messages.ASYNC_VALIDATION = False
    _pin(SIMULATOR_CORE)
    # Thousands of stations in one process are the server's case too: without the collector
    # settings the simulator's own full collections (measured: half its CPU in a storm, seconds
    # of spread between runs) held back the stations it reported on.
    tune_collector()
    stations: dict[str, SimStation] = {}
    loop = asyncio.get_running_loop()

    async def boot_one(sim: SimStation, report: dict[str, Any]) -> None:
        for _attempt in range(60):
            try:
                await sim.connect()
                if await sim.boot() == "Accepted":
                    report["accepted"] += 1
                    report["last"] = time.perf_counter()
                    return
                await sim.close()
            except Exception as error:
                name = type(error).__name__
                report["errors"][name] = report["errors"].get(name, 0) + 1
            await asyncio.sleep(1.0)
        report["failed"] += 1

    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        op = command["op"]
        if op == "boot":
            ids = [station_id(command["prefix"], n) for n in range(command["first"],
                                                                    command["last"])]
            report: dict[str, Any] = {"accepted": 0, "failed": 0, "errors": {}, "last": 0.0}
            started = time.perf_counter()
            tasks = []
            for sid in ids:
                sim = stations.get(sid) or SimStation(
                    url, sid, password=password_of(sid) if sid.startswith(PROFILE_1) else None,
                    ping_interval=None, open_timeout=120, check_schemas=False,
                    keep_received=False,
                )
                stations[sid] = sim
                if command.get("list_version"):
                    # A station keeps its list across the server's restart.
                    sim.memory.local_list_version = command["list_version"]
                tasks.append(asyncio.create_task(boot_one(sim, report)))
                if command["rate"]:
                    await asyncio.sleep(1 / command["rate"])
            await asyncio.gather(*tasks)
            report["seconds"] = report.pop("last") - started
            # The lists cost the simulator more than the server (it converts every entry of
            # every list to snake_case): waited for at most `lists_wait_s`.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(command["lists_wait_s"]):
                    while not all(stations[sid].memory.local_list_version > 0 for sid in ids):
                        await asyncio.sleep(0.1)
            report["lists_seconds"] = time.perf_counter() - started
            report["listed"] = sum(stations[sid].memory.local_list_version > 0 for sid in ids)
            report["version"] = max(stations[sid].memory.local_list_version for sid in ids)
            print(json.dumps(report), flush=True)
        elif op == "close":
            await asyncio.gather(*(s.close() for s in stations.values()), return_exceptions=True)
            print("{}", flush=True)
        elif op == "exit":
            await asyncio.gather(*(s.close() for s in stations.values()), return_exceptions=True)
            print("{}", flush=True)
            return


# orchestration


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_fleet", *args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


class _Run:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = _free_port()
        self.server = self._server()
        self.sim = _spawn("sim", f"ws://127.0.0.1:{self.port}/ocpp")

    def _server(self) -> subprocess.Popen[str]:
        server = _spawn("serve", self.database_url, str(self.port))
        _wait_line(server, "READY")
        _drain(server)
        return server

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.sim.stdin is not None
        self.sim.stdin.write(json.dumps(command) + "\n")
        self.sim.stdin.flush()
        answer: dict[str, Any] = json.loads(_wait_line(self.sim, "{"))
        return answer

    def boot(
        self, label: str, prefix: str, first: int, last: int, rate: float,
        lists_wait_s: float = 120.0, list_version: int = 0,
    ) -> int:
        cpu = _cpu_s(self.server.pid)
        report = self.ask(op="boot", prefix=prefix, first=first, last=last, rate=rate,
                          lists_wait_s=lists_wait_s, list_version=list_version)
        how = "at once" if not rate else f"at {rate:.0f}/s"
        print(f"[{label}] {report['accepted']}/{last - first} Accepted in "
              f"{report['seconds']:.1f} s ({how}; {report['failed']} failed, retries "
              f"{report['errors']}); {report['listed']} hold the {BADGES}-badge local list "
              f"after {report['lists_seconds']:.1f} s; server CPU "
              f"{_cpu_s(self.server.pid) - cpu:.1f} s", flush=True)
        version: int = report["version"]
        return version

    def restart(self) -> None:
        self.ask(op="close")
        _stop(self.server)
        self.server = self._server()

    def unhashed(self) -> int:
        """Profile-1 stations still waiting for the scrypt hash of their imported password."""
        return asyncio.run(unhashed_passwords(self.database_url))

    def hashed(self, label: str, at_most_s: float = 30.0) -> int:
        """Wait a while for the background scrypt of imported passwords (one thread, niced);
        how many are left."""
        started = time.perf_counter()
        cpu = _cpu_s(self.server.pid)
        before = left = self.unhashed()
        while left and time.perf_counter() - started < at_most_s:
            time.sleep(1)
            left = self.unhashed()
        used = _cpu_s(self.server.pid) - cpu
        print(f"[{label}] background scrypt of imported passwords: {before - left} hashed in "
              f"{time.perf_counter() - started:.0f} s (server CPU {used:.0f} s), {left} left",
              flush=True)
        return left

    def settled(self, label: str, quiet_percent: float = 8.0, at_most_s: float = 300.0) -> None:
        """Wait until the server's own work after the boots is done: its CPU over a 2 s
        window below `quiet_percent` of a core (the paced scrypt backfill of imported passwords
        alone costs ~4 %)."""
        started = time.perf_counter()
        while time.perf_counter() - started < at_most_s:
            cpu = _cpu_s(self.server.pid)
            time.sleep(2)
            if (_cpu_s(self.server.pid) - cpu) / 2 * 100 < quiet_percent:
                break
        print(f"[{label}] after-boot work settled after {time.perf_counter() - started:.0f} s",
              flush=True)

    def idle(self, label: str, seconds: float = 20.0) -> None:
        pid = self.server.pid
        main_thread = f"task/{pid}/stat"
        cpu, loop_cpu = _cpu_s(pid), _cpu_s(pid, main_thread)
        time.sleep(seconds)
        used, loop_used = _cpu_s(pid) - cpu, _cpu_s(pid, main_thread) - loop_cpu
        print(f"[{label}] idle {seconds:.0f} s: server CPU {used / seconds * 100:.1f} % of a "
              f"core, of which the event loop's thread {loop_used / seconds * 100:.1f} % (the "
              f"rest: threads such as the background scrypt); RSS "
              f"{_rss_kib(pid) / 1024:.0f} MiB", flush=True)

    def end(self) -> None:
        self.ask(op="exit")
        self.sim.wait(timeout=120)
        _stop(self.server)


def _sequence(database_url: str, database: str) -> None:
    seconds = asyncio.run(_import(database_url))
    print(f"[import, {database}] site file: {FLEET} profile-1 stations with plain passwords + "
          f"{STORM} profile-0, {BADGES} accounts and badges: {seconds:.1f} s", flush=True)
    run = _Run(database_url)
    try:
        version = run.boot(f"profile 1, {database}, {STORM} stations, first boot after the "
                           "import", "P1-", 0, STORM, 0)
        run.restart()
        run.boot(f"profile 1, {database}, {STORM} stations, boot storm on a fresh server",
                 "P1-", 0, STORM, 0)
        run.restart()
        # Every station of a running fleet holds the list when the server restarts; those
        # that never connected are given it too, so the figure is the logins and boots.
        run.boot(f"profile 1, {database}, {FLEET} stations, reconnect after restart "
                 f"({FLEET - STORM} of them logging in first since the import)", "P1-",
                 0, FLEET, 0, list_version=version)
        left = run.hashed(f"profile 1, {database}, {FLEET} connected")
        run.settled(f"profile 1, {database}, {FLEET} connected")
        run.idle(f"profile 1, {database}, {FLEET} connected"
                 + (f", paced scrypt backfill of {left} imported passwords running" if left
                    else ""))
        run.restart()
        run.boot(f"extra: profile 0, {database}, {STORM} stations, boot storm on a fresh "
                 "server", "P0-", 0, STORM, 0, list_version=version)
    finally:
        run.end()


def main() -> None:
    _raise_nofile(FLEET + STORM)
    print(f"(fleet {FLEET}, storm {STORM}, {BADGES} badges, compression on; one server process "
          f"pinned to core {SERVER_CORE}, the simulator to core {SIMULATOR_CORE}; 2 shared "
          "cores: figures are noisy)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        _sequence(f"sqlite:///{tmp}/bench.db", "SQLite")
    server_url = os.environ.get("VOLTHAUS_BENCH_DATABASE_URL") or os.environ.get(
        "VOLTHAUS_TEST_DATABASE_URL")
    if not server_url:
        print("[PostgreSQL] skipped (set VOLTHAUS_BENCH_DATABASE_URL)", flush=True)
        return
    from sqlalchemy.engine import make_url

    from csms.db.scratch import scratch_database

    if make_url(server_url).host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("VOLTHAUS_BENCH_DATABASE_URL: the benchmark only targets 127.0.0.1")
    with scratch_database(server_url, "volthaus_bench_fleet") as database_url:
        _sequence(database_url, "PostgreSQL")


if __name__ == "__main__":
    _raise_nofile(FLEET + STORM)
    command = sys.argv[1]
    if command == "serve":
        asyncio.run(_serve(sys.argv[2], int(sys.argv[3])))
    elif command == "sim":
        asyncio.run(_simulate(sys.argv[2]))
    else:
        raise SystemExit(f"unknown command {command!r}")
