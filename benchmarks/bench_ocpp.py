"""OCPP load: one server process, the simulator in another (`python -m benchmarks ocpp`).

Figures:
* connect + boot time for N stations (default 5,000; VOLTHAUS_BENCH_STATIONS to change), and
  when the server's own work after the boots (configuration read, local list) has settled;
* a realistic mix for D seconds once settled (Heartbeat every 30 s, StatusNotification,
  Authorize, Start/Stop, MeterValues every 10 s while charging; 30 % of stations charge, in
  40 s sessions so that starts and stops are frequent): messages/s and p50/p99 round trip;
* server memory per connection (RSS before and after connecting), also with websocket
  compression off;
* time for all stations to reconnect and boot after the server restarts;
* the same three on PostgreSQL when VOLTHAUS_BENCH_DATABASE_URL (or VOLTHAUS_TEST_DATABASE_URL)
  names a server on 127.0.0.1: a fresh database is created for the run and dropped after;
* saturation: Heartbeats back to back from 500 stations, ours against a bare `ocpp` +
  `websockets` server answering Heartbeat (with the library's thread-pool validation on and off).

Stations use security profile 0 so the protocol path is measured; the scrypt check a profile-1
station costs once per process (then cached) is measured on its own and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATIONS = int(os.environ.get("VOLTHAUS_BENCH_STATIONS", "5000"))
MIX_SECONDS = float(os.environ.get("VOLTHAUS_BENCH_MIX_SECONDS", "60"))
SATURATION_STATIONS = 500
SATURATION_SECONDS = 10.0


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, STATIONS * 2 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# the server process (ours)


async def _serve_ours(database_url: str, port: int, compression: bool = True) -> None:
    from csms.bus import LocalBus
    from csms.db.engine import create_engine
    from csms.logging import configure_logging
    from csms.ocpp.server import OcppServer, ServerOptions

    configure_logging("WARNING", "console")
    engine = create_engine(database_url)
    bus = LocalBus(node_id="bench")
    await bus.start()
    server = OcppServer(
        engine=engine, bus=bus, clock=lambda: datetime.now(UTC), heartbeat_interval_s=300,
        pending_retry_interval_s=60,
        options=ServerOptions(port=port, ping_interval_s=None, compression=compression),
    )
    await server.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    await bus.stop()
    await engine.dispose()


# the bare server: the ocpp library's ChargePoint answering Heartbeat, nothing else


async def _serve_bare(port: int, async_validation: bool) -> None:
    import ocpp.messages
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    ocpp.messages.ASYNC_VALIDATION = async_validation

    class Bare(ChargePoint):  # type: ignore[misc]
        @on("Heartbeat")
        def on_heartbeat(self) -> Any:
            return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

        @on("BootNotification")
        def on_boot(self, **kwargs: Any) -> Any:
            return call_result.BootNotification(
                current_time=datetime.now(UTC).isoformat(), interval=300, status="Accepted"
            )

    async def handler(websocket: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await Bare(websocket.request.path.rsplit("/", 1)[-1], websocket).start()

    import logging

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                     ping_interval=None):
        print("READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


# the simulator process


async def _simulate(url: str, mode: str) -> None:
    import ocpp.messages

    from csms.simulator.fleet import FleetPlan, FleetReport, connect_fleet, drive
    from csms.simulator.station import SimStation

    # The client's own schema checks would make the simulator the bottleneck.
    ocpp.messages.ASYNC_VALIDATION = False
    out: dict[str, Any] = {}
    if mode == "saturate":
        plan = FleetPlan(url=url, count=SATURATION_STATIONS, id_prefix="BENCH-",
                         connect_rate=1000, check_schemas=False)
        report = FleetReport()
        stations = await connect_fleet(plan, report)
        hb = FleetReport()
        for station in stations:
            station.record_latency = hb.record
        until = time.monotonic() + SATURATION_SECONDS

        async def loop(station: SimStation) -> None:
            while time.monotonic() < until:
                await station.heartbeat()

        started = time.perf_counter()
        await asyncio.gather(*(loop(s) for s in stations))
        elapsed = time.perf_counter() - started
        out = {"connected": report.connected, "messages": hb.messages,
               "rate": hb.messages / elapsed, "p50": hb.percentile(0.5),
               "p99": hb.percentile(0.99)}
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        print(json.dumps(out), flush=True)
        return

    plan = FleetPlan(url=url, count=STATIONS, id_prefix="BENCH-", heartbeat_s=30.0,
                     meter_interval_s=10.0, charge_s=40.0, charging_share=0.3,
                     duration_s=MIX_SECONDS, connect_rate=400, check_schemas=False)
    report = FleetReport()
    started = time.perf_counter()
    stations = await connect_fleet(plan, report)
    # The server's own work after each boot (configuration read, local list) ends with the
    # list the station stores: the mix is measured once that settled.
    async with asyncio.timeout(300):
        while not all(s.memory.local_list_version > 0 for s in stations):
            await asyncio.sleep(0.1)
    settled = time.perf_counter() - started
    print(json.dumps({"phase": "connected", "connected": report.connected,
                      "booted": report.booted, "failed": report.failed,
                      "seconds": report.boot_seconds, "settled": settled,
                      "errors": dict(report.errors)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # go: mix
    mix = FleetReport()
    for station in stations:
        station.record_latency = mix.record
    until = time.monotonic() + plan.duration_s
    started = time.perf_counter()
    mix.window_end = started + plan.duration_s
    await asyncio.gather(*(drive(s, plan, mix, until) for s in stations))
    elapsed = plan.duration_s
    per_action = {a: {"n": len(v), "p50": mix.percentile(0.5, a), "p99": mix.percentile(0.99, a)}
                  for a, v in mix.latencies.items()}
    print(json.dumps({"phase": "mix", "messages": mix.messages, "rate": mix.messages / elapsed,
                      "p50": mix.percentile(0.5), "p99": mix.percentile(0.99),
                      "actions": per_action, "errors": dict(mix.errors)}), flush=True)
    # Wait for the server restart, then reconnect everybody as fast as the server takes it.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
    again = FleetReport()

    async def reconnect(station: SimStation) -> None:
        for _attempt in range(20):
            try:
                await station.connect()
                await station.boot()
                again.booted += 1
                return
            except Exception as error:
                again.errors[type(error).__name__] += 1
                await asyncio.sleep(0.5)
        again.failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(reconnect(s) for s in stations))
    print(json.dumps({"phase": "reconnected", "booted": again.booted, "failed": again.failed,
                      "seconds": time.perf_counter() - started,
                      "errors": dict(again.errors)}), flush=True)
    await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)


# orchestration


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_ocpp", *args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def _wait_line(process: subprocess.Popen[str], prefix: str = "") -> str:
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"process {process.args} ended early")
        if line.startswith(prefix):
            return line.strip()


def _drain(process: subprocess.Popen[str], keep: int = 5) -> None:
    """Keep reading a server's output (a full pipe would stall it); show its first errors."""

    def run() -> None:
        assert process.stdout is not None
        shown = 0
        for line in process.stdout:
            if shown < keep and ("error" in line or "Error" in line):
                print(f"  [server] {line.rstrip()[:300]}", file=sys.stderr, flush=True)
                shown += 1

    threading.Thread(target=run, daemon=True).start()


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _prepare(database_url: str, count: int) -> None:
    from csms.db.engine import create_engine, session_factory
    from csms.db.migrate import upgrade_database
    from csms.inventory.models import Site, Station, Tariff
    from rfid.registry import register_badge
    from wallet.models import Account

    engine = create_engine(database_url)
    await upgrade_database(engine)
    async with session_factory(engine)() as session:
        session.add(Site(id="bench", name="Bench", timezone="Europe/Berlin", currency="EUR",
                         country="DE"))
        await session.flush()
        session.add(Tariff(site_id="bench", id="wallbox", document={"id": "wallbox"}))
        session.add(Account(id="a-bench", site_id="bench", ref="a-bench", name="Bench"))
        await session.flush()
        for number in range(count):
            session.add(Station(id=f"BENCH-{number:05d}", site_id="bench", protocol="ocpp1.6",
                                security_profile=0, connectors=1, tariff_id="wallbox"))
        await register_badge(session, uid="04A2B3C4", account_id="a-bench",
                             now=datetime.now(UTC))
        await session.commit()
    await engine.dispose()


def _saturate(server_args: list[str]) -> dict[str, Any]:
    port = _free_port()
    server = _spawn(*server_args, str(port))
    try:
        _wait_line(server, "READY")
        _drain(server)
        sim = _spawn("sim", f"ws://127.0.0.1:{port}/ocpp", "saturate")
        result: dict[str, Any] = json.loads(_wait_line(sim, "{"))
        sim.wait(timeout=120)
        return result
    finally:
        _stop(server)


def _fleet(database_url: str, label: str) -> None:
    """Connect + boot, the mix, memory and the restart against one server on `database_url`."""
    port = _free_port()
    server = _spawn("serve", database_url, str(port))
    _wait_line(server, "READY")
    _drain(server)
    rss_idle = _rss_kib(server.pid)
    sim = _spawn("sim", f"ws://127.0.0.1:{port}/ocpp", "mix")
    connected = json.loads(_wait_line(sim, "{"))
    rss_connected = _rss_kib(server.pid)
    per_conn = (rss_connected - rss_idle) / max(connected["connected"], 1)
    print(f"[{label}] stations: {connected['connected']}/{STATIONS} connected, "
          f"{connected['booted']} booted in {connected['seconds']:.1f} s "
          f"({connected['failed']} failed {connected['errors']}); configuration read and "
          f"local list in place on all after {connected['settled']:.1f} s", flush=True)
    print(f"[{label}] server RSS: idle {rss_idle / 1024:.0f} MiB, connected "
          f"{rss_connected / 1024:.0f} MiB -> {per_conn:.1f} KiB per connection", flush=True)
    assert sim.stdin is not None
    sim.stdin.write("go\n")
    sim.stdin.flush()
    mix = json.loads(_wait_line(sim, "{"))
    print(f"[{label}] mix {MIX_SECONDS:.0f} s: {mix['messages']} messages, "
          f"{mix['rate']:.0f} msg/s, p50 {mix['p50'] * 1000:.1f} ms, "
          f"p99 {mix['p99'] * 1000:.1f} ms, errors {mix['errors']}; "
          f"server RSS {_rss_kib(server.pid) / 1024:.0f} MiB", flush=True)
    for action, figures in sorted(mix["actions"].items()):
        print(f"  {action:<20} {figures['n']:>7}  p50 {figures['p50'] * 1000:7.1f} ms"
              f"  p99 {figures['p99'] * 1000:7.1f} ms", flush=True)
    _stop(server)
    server = _spawn("serve", database_url, str(port))
    _wait_line(server, "READY")
    _drain(server)
    sim.stdin.write("reconnect\n")
    sim.stdin.flush()
    again = json.loads(_wait_line(sim, "{"))
    print(f"[{label}] restart: {again['booted']} stations reconnected and booted in "
          f"{again['seconds']:.1f} s ({again['failed']} failed, retries {again['errors']})",
          flush=True)
    sim.wait(timeout=120)
    _stop(server)


def _memory_without_compression(database_url: str) -> None:
    """Connect + boot only, against a server with websocket compression off."""
    port = _free_port()
    server = _spawn("serve", database_url, str(port), "nocompression")
    _wait_line(server, "READY")
    _drain(server)
    rss_idle = _rss_kib(server.pid)
    sim = _spawn("sim", f"ws://127.0.0.1:{port}/ocpp", "mix")
    connected = json.loads(_wait_line(sim, "{"))
    per_conn = (_rss_kib(server.pid) - rss_idle) / max(connected["connected"], 1)
    print(f"[SQLite, compression off] {connected['connected']} stations booted in "
          f"{connected['seconds']:.1f} s -> {per_conn:.1f} KiB per connection", flush=True)
    sim.kill()
    sim.wait()
    _stop(server)


def _postgres(server_url: str) -> None:
    """The same fleet on a fresh PostgreSQL database, created here and dropped after."""
    from sqlalchemy.engine import make_url

    from csms.db.scratch import scratch_database

    if make_url(server_url).host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("VOLTHAUS_BENCH_DATABASE_URL: the benchmark only targets 127.0.0.1")
    with scratch_database(server_url, "volthaus_bench_ocpp") as database_url:
        asyncio.run(_prepare(database_url, STATIONS))
        _fleet(database_url, "PostgreSQL")


def main() -> None:
    _raise_nofile()
    from csms.ocpp.security import hash_station_password, verify_station_password

    hashed = hash_station_password("bench-password-0000")
    started = time.perf_counter()
    for _ in range(10):
        verify_station_password("bench-password-0000", hashed)
    scrypt_ms = (time.perf_counter() - started) / 10 * 1000

    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        asyncio.run(_prepare(database_url, max(STATIONS, SATURATION_STATIONS)))
        _fleet(database_url, "SQLite")
        _memory_without_compression(database_url)
        ours = _saturate(["serve", database_url])
    server_url = os.environ.get("VOLTHAUS_BENCH_DATABASE_URL") or os.environ.get(
        "VOLTHAUS_TEST_DATABASE_URL")
    if server_url:
        _postgres(server_url)
    else:
        print("[PostgreSQL] skipped (set VOLTHAUS_BENCH_DATABASE_URL)", flush=True)
    print(f"profile 1: scrypt check {scrypt_ms:.1f} ms per station and server process "
          f"(~{scrypt_ms * STATIONS / 1000 / 2:.0f} s on 2 threads for {STATIONS})",
          flush=True)
    bare_async = _saturate(["bare", "1"])
    bare_inline = _saturate(["bare", "0"])
    for name, figures in (("ours (SQLite)", ours), ("bare, thread-pool validation", bare_async),
                          ("bare, inline validation", bare_inline)):
        print(f"saturation {name}: {figures['rate']:.0f} Heartbeat/s, "
              f"p50 {figures['p50'] * 1000:.1f} ms, p99 {figures['p99'] * 1000:.1f} ms "
              f"({SATURATION_STATIONS} stations)")
    print(f"ratio ours / bare: {ours['rate'] / bare_async['rate']:.2f} (library default), "
          f"{ours['rate'] / bare_inline['rate']:.2f} (bare validating inline)")


if __name__ == "__main__":
    _raise_nofile()
    command = sys.argv[1]
    if command == "serve":
        asyncio.run(_serve_ours(sys.argv[2], int(sys.argv[3]), "nocompression" not in sys.argv))
    elif command == "bare":
        asyncio.run(_serve_bare(int(sys.argv[3]), sys.argv[2] == "1"))
    elif command == "sim":
        asyncio.run(_simulate(sys.argv[2], sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {command!r}")
