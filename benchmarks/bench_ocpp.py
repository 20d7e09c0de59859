"""OCPP load on the real site (`python -m benchmarks ocpp`): issue 12's case.

Every station is on security profile 1 with its own password, on a site of 2,000 households
with a badge each (benchmarks/fleet_site.py), imported with the login key so that no scrypt runs
while stations connect; the server is given the same key. One server process pinned to one
core, the simulator in another process pinned to the other. Profile 0 only on lines labelled
"extra". Figures:

* connect + boot of N stations at a steady 400/s (default 2,000, the issue's site; 10,000 are
  in `benchmarks fleet`; VOLTHAUS_BENCH_STATIONS), and
  when the server's own work after the boots (configuration read, 2,000-badge local list) has
  settled;
* a realistic mix for D seconds once settled (VOLTHAUS_BENCH_MIX_SECONDS, default 60: Heartbeat
  every 30 s, StatusNotification, Authorize, Start/Stop, MeterValues every 10 s while charging;
  30 % of stations charge, in 40 s sessions, each with its household's badge): messages/s,
  p50/p99 round trip, and the server's CPU over the window against a bare server answering the
  same messages and storing nothing (ratio ours / bare; the issue's target is under 2). The mix
  is the site's steady state: the bench server hashes the imported passwords without the pause
  between two (`login_hash_interval_s=0`, still at the lowest priority) and the mix starts once
  none is left; a live site pays that one-off backfill paced, about 4 % of a core for the hours
  after an import (`benchmarks fleet`, idle line);
* server memory per connection (RSS before and after connecting), with websocket compression
  on and off (the issue's target, compression off: under 40 KiB);
* time for all stations to reconnect and boot after the server restarts;
* the same fleet on PostgreSQL when VOLTHAUS_BENCH_DATABASE_URL (or VOLTHAUS_TEST_DATABASE_URL)
  names a server on 127.0.0.1: a fresh database is created for the run and dropped after;
* saturation: Heartbeats back to back from 500 stations, ours against a bare `ocpp` +
  `websockets` server answering Heartbeat (with the library's thread-pool validation on and
  off): Heartbeats/s and server CPU seconds per 1,000 Heartbeats (ratio ours / bare);
* extra, labelled: saturation with 500 profile-0 stations.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
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

from benchmarks.fleet_site import (
    BADGES,
    PROFILE_0,
    PROFILE_1,
    SERVER_CORE,
    SIMULATOR_CORE,
    badge_of,
    cpu_s,
    import_site_file,
    login_key,
    password_of,
    pin,
    unhashed_passwords,
)

ROOT = Path(__file__).resolve().parents[1]
STATIONS = int(os.environ.get("VOLTHAUS_BENCH_STATIONS", "2000"))
MIX_SECONDS = float(os.environ.get("VOLTHAUS_BENCH_MIX_SECONDS", "60"))
SATURATION_STATIONS = 500
SATURATION_SECONDS = 10.0
CONNECT_RATE = 400.0
# The server's work after each boot ends with the 2,000-badge local list, which costs the
# simulator more than the server (it converts every entry): waited for at most this long.
SETTLE_S = 900.0


def _raise_nofile(count: int = STATIONS) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, count * 2 + 1000))
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
    from csms.collector import FreezeReport, tuned_collector
    from csms.db.engine import create_engine
    from csms.logging import configure_logging
    from csms.ocpp.server import OcppServer, ServerOptions

    configure_logging("WARNING", "console")
    pin(SERVER_CORE)
    engine = create_engine(database_url)
    bus = LocalBus(node_id="bench")
    await bus.start()
    server = OcppServer(
        engine=engine, bus=bus, clock=lambda: datetime.now(UTC), heartbeat_interval_s=300,
        pending_retry_interval_s=60,
        # The imported passwords' scrypt backfill runs unpaced, so that it is over before the
        # mix (see the module's docstring).
        options=ServerOptions(port=port, ping_interval_s=None, compression=compression,
                              login_key=login_key(), login_hash_interval_s=0.0),
    )
    await server.start()

    def reported(report: FreezeReport) -> None:
        print(f"(server: collector {report.step} at {report.stations} stations, "
              f"{report.collected} collected, loop stopped {report.pause_s * 1000:.0f} ms)",
              file=sys.stderr, flush=True)

    # As `volthaus serve` does once started.
    async with tuned_collector(server.fleet_count, reported):
        print("READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    # What the freezes kept from the collector: the cycles among the frozen objects.
    started = time.perf_counter()
    gc.unfreeze()
    print(f"(server: {gc.collect()} unreachable objects when unfrozen at the end, full "
          f"collection {(time.perf_counter() - started) * 1000:.0f} ms)", file=sys.stderr,
          flush=True)
    await server.stop()
    await bus.stop()
    await engine.dispose()


# the bare server: the ocpp library's ChargePoint answering the mix's messages, storing nothing


async def _serve_bare(port: int, async_validation: bool) -> None:
    import logging

    import ocpp.messages
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    from csms.collector import tune_collector

    pin(SERVER_CORE)
    ocpp.messages.ASYNC_VALIDATION = async_validation
    # The same collector settings as ours, so that the ratio compares the work done (7.9 s
    # against 8.5 s with CPython's defaults over the 2,000-station mix, 4 December).
    tune_collector()
    transactions = itertools.count(1)
    accepted = {"status": "Accepted"}

    def now() -> str:
        return datetime.now(UTC).isoformat()

    class Bare(ChargePoint):  # type: ignore[misc]
        @on("BootNotification")
        def on_boot(self, **kwargs: Any) -> Any:
            return call_result.BootNotification(current_time=now(), interval=300,
                                                status="Accepted")

        @on("Heartbeat")
        def on_heartbeat(self) -> Any:
            return call_result.Heartbeat(current_time=now())

        @on("StatusNotification")
        def on_status(self, **kwargs: Any) -> Any:
            return call_result.StatusNotification()

        @on("Authorize")
        def on_authorize(self, **kwargs: Any) -> Any:
            return call_result.Authorize(id_tag_info=accepted)

        @on("StartTransaction")
        def on_start(self, **kwargs: Any) -> Any:
            return call_result.StartTransaction(transaction_id=next(transactions),
                                                id_tag_info=accepted)

        @on("MeterValues")
        def on_meter_values(self, **kwargs: Any) -> Any:
            return call_result.MeterValues()

        @on("StopTransaction")
        def on_stop(self, **kwargs: Any) -> Any:
            return call_result.StopTransaction(id_tag_info=accepted)

    async def handler(websocket: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await Bare(websocket.request.path.rsplit("/", 1)[-1], websocket).start()

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                     ping_interval=None):
        print("READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


# the simulator process: `config` says which stations, with passwords or not, and whether the
# server sends them a local list after boot (ours does; the bare server does not)


async def _simulate(url: str, config: dict[str, Any]) -> None:
    import ocpp.messages

    from csms.collector import tune_collector
    from csms.simulator.fleet import FleetPlan, FleetReport, connect_fleet, drive
    from csms.simulator.station import SimStation

    pin(SIMULATOR_CORE)
    # The client's own schema checks would make the simulator the bottleneck.
    ocpp.messages.ASYNC_VALIDATION = False
    # Its full collections, with thousands of stations, would be in the round trips it reports
    # (as in the server: csms.collector).
    tune_collector()
    loop = asyncio.get_running_loop()
    saturate = config["mode"] == "saturate"
    plan = FleetPlan(
        url=url, count=config["count"], id_prefix=config["prefix"],
        password_for=password_of if config["passwords"] else None,
        heartbeat_s=30.0, meter_interval_s=10.0, charge_s=40.0, charging_share=0.3,
        duration_s=SATURATION_SECONDS if saturate else MIX_SECONDS,
        connect_rate=1000 if saturate else CONNECT_RATE, check_schemas=False,
    )
    report = FleetReport()
    started = time.perf_counter()
    stations = await connect_fleet(plan, report)
    # The server's own work after each boot (configuration read, local list) ends with the
    # list the station stores: the figures are measured once that settled.
    if config["lists"]:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_S):
                while not all(s.memory.local_list_version > 0 for s in stations):
                    await asyncio.sleep(0.1)
    settled = time.perf_counter() - started
    print(json.dumps({"phase": "connected", "connected": report.connected,
                      "booted": report.booted, "failed": report.failed,
                      "seconds": report.boot_seconds, "settled": settled,
                      "listed": sum(s.memory.local_list_version > 0 for s in stations),
                      "errors": dict(report.errors)}), flush=True)
    if await loop.run_in_executor(None, sys.stdin.readline) != "go\n":
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        return
    mix = FleetReport()
    for station in stations:
        station.record_latency = mix.record
    until = time.monotonic() + plan.duration_s
    started = time.perf_counter()
    if saturate:

        async def heartbeats(station: SimStation) -> None:
            while time.monotonic() < until:
                await station.heartbeat()

        await asyncio.gather(*(heartbeats(s) for s in stations))
        elapsed = time.perf_counter() - started
    else:
        mix.window_end = started + plan.duration_s
        # Each station charges with the badge of its household.
        await asyncio.gather(*(
            drive(s, dataclasses.replace(plan, id_tag=badge_of(s.station_id)), mix, until)
            for s in stations))
        elapsed = plan.duration_s
    per_action = {a: {"n": len(v), "p50": mix.percentile(0.5, a), "p99": mix.percentile(0.99, a)}
                  for a, v in mix.latencies.items()}
    print(json.dumps({"phase": "mix", "messages": mix.messages, "rate": mix.messages / elapsed,
                      "p50": mix.percentile(0.5), "p99": mix.percentile(0.99),
                      "actions": per_action, "errors": dict(mix.errors)}), flush=True)
    # On "reconnect" (after the server restarted), everybody reconnects as fast as the server
    # takes it; on anything else the simulator ends.
    if await loop.run_in_executor(None, sys.stdin.readline) != "reconnect\n":
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        return
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


def _server(*args: str) -> subprocess.Popen[str]:
    server = _spawn(*args)
    _wait_line(server, "READY")
    _drain(server)
    return server


def _say(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _simulator(port: int, mode: str, count: int, profile: int, lists: bool) -> \
        subprocess.Popen[str]:
    config = {"mode": mode, "count": count, "prefix": PROFILE_1 if profile else PROFILE_0,
              "passwords": bool(profile), "lists": lists}
    return _spawn("sim", f"ws://127.0.0.1:{port}/ocpp", json.dumps(config))


class _Mix:
    """The mix against one server: connect, settle, D seconds of traffic; the server's CPU
    over the D seconds (sampled here, so the stops at the window's end are not in it)."""

    def __init__(self, server: subprocess.Popen[str], port: int, profile: int, lists: bool):
        self.server = server
        self.rss_idle = _rss_kib(server.pid)
        self.sim = _simulator(port, "mix", STATIONS, profile, lists)
        self.connected: dict[str, Any] = json.loads(_wait_line(self.sim, "{"))
        self.rss_connected = _rss_kib(server.pid)
        self.cpu = self.loop_cpu = 0.0
        self.figures: dict[str, Any] = {}

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_connected - self.rss_idle) / max(self.connected["connected"], 1)

    def run(self) -> dict[str, Any]:
        pid = self.server.pid
        main_thread = f"task/{pid}/stat"
        before, loop_before = cpu_s(pid), cpu_s(pid, main_thread)
        _say(self.sim, "go")
        time.sleep(MIX_SECONDS)
        self.cpu = cpu_s(pid) - before
        self.loop_cpu = cpu_s(pid, main_thread) - loop_before
        self.figures = json.loads(_wait_line(self.sim, "{"))
        return self.figures

    def end(self) -> None:
        _say(self.sim, "exit")
        self.sim.wait(timeout=120)


def _fleet(database_url: str, database: str) -> tuple[float, float]:
    """Connect + boot, the mix, memory and the restart against our server on `database_url`;
    the server's CPU seconds over the mix, and those of its event loop's thread."""
    label = f"profile 1, {database}, {STATIONS} stations"
    port = _free_port()
    server = _server("serve", database_url, str(port))
    run = _Mix(server, port, 1, lists=True)
    connected = run.connected
    print(f"[{label}] connect at {CONNECT_RATE:.0f}/s: {connected['connected']}/{STATIONS} "
          f"connected, {connected['booted']} booted in {connected['seconds']:.1f} s "
          f"({connected['failed']} failed {connected['errors']}); configuration read and "
          f"{BADGES}-badge local list in place on {connected['listed']} after "
          f"{connected['settled']:.1f} s", flush=True)
    backfill = _backfill_done(database_url)
    print(f"[{label}] scrypt backfill of the imported passwords (unpaced on this bench server) "
          f"over {backfill:.0f} s after that: the mix below is the steady state", flush=True)
    print(f"[{label}, compression on] server RSS: idle {run.rss_idle / 1024:.0f} MiB, "
          f"connected {run.rss_connected / 1024:.0f} MiB -> {run.kib_per_connection:.1f} KiB "
          "per connection", flush=True)
    mix = run.run()
    print(f"[{label}] mix {MIX_SECONDS:.0f} s: {mix['messages']} messages, "
          f"{mix['rate']:.0f} msg/s, p50 {mix['p50'] * 1000:.1f} ms, "
          f"p99 {mix['p99'] * 1000:.1f} ms, errors {mix['errors']}; server CPU "
          f"{run.cpu:.1f} s ({run.cpu / MIX_SECONDS * 100:.1f} % of a core, of which the event "
          f"loop's thread {run.loop_cpu / MIX_SECONDS * 100:.1f} %; "
          f"{run.cpu / max(mix['messages'], 1) * 1000:.2f} s per 1,000 messages); server RSS "
          f"{_rss_kib(server.pid) / 1024:.0f} MiB", flush=True)
    for action, figures in sorted(mix["actions"].items()):
        print(f"  [{label}] {action:<20} {figures['n']:>7}  p50 "
              f"{figures['p50'] * 1000:7.1f} ms  p99 {figures['p99'] * 1000:7.1f} ms", flush=True)
    _stop(server)
    server = _server("serve", database_url, str(port))
    _say(run.sim, "reconnect")
    again = json.loads(_wait_line(run.sim, "{"))
    print(f"[{label}] restart: {again['booted']} stations reconnected and booted in "
          f"{again['seconds']:.1f} s ({again['failed']} failed, retries {again['errors']})",
          flush=True)
    run.sim.wait(timeout=120)
    _stop(server)
    return run.cpu, run.loop_cpu


def _backfill_done(database_url: str, at_most_s: float = SETTLE_S) -> float:
    """Seconds until no imported password waits for its scrypt hash (at most `at_most_s`)."""
    started = time.perf_counter()
    while (asyncio.run(unhashed_passwords(database_url)) > 0
           and time.perf_counter() - started < at_most_s):
        time.sleep(2.0)
    return time.perf_counter() - started


def _bare_mix() -> float:
    """The same mix against the bare server (answers, stores nothing); ratio of server CPU."""
    port = _free_port()
    server = _server("bare", "1", str(port))
    try:
        run = _Mix(server, port, 1, lists=False)
        mix = run.run()
        run.end()
    finally:
        _stop(server)
    print(f"[profile 1 stations, bare server (no database), {STATIONS} stations] mix "
          f"{MIX_SECONDS:.0f} s: {mix['messages']} messages, {mix['rate']:.0f} msg/s, "
          f"p50 {mix['p50'] * 1000:.1f} ms, errors {mix['errors']}; server CPU {run.cpu:.1f} s "
          f"({run.cpu / MIX_SECONDS * 100:.1f} % of a core, "
          f"{run.cpu / max(mix['messages'], 1) * 1000:.2f} s per 1,000 messages)", flush=True)
    return run.cpu


def _mix_ratio(ours: tuple[float, float], bare_cpu: float, database: str) -> None:
    bare = max(bare_cpu, 1e-9)
    print(f"[profile 1, {database}, {STATIONS} stations] mix CPU ratio ours / bare: "
          f"{ours[0] / bare:.2f} (target: under 2); {ours[1] / bare:.2f} counting only our "
          "event loop's thread",
          flush=True)


def _memory_without_compression(database_url: str, database: str) -> None:
    """Connect + boot only, against a server with websocket compression off."""
    port = _free_port()
    server = _server("serve", database_url, str(port), "nocompression")
    warm = None
    try:
        # What the first stations cost once (the site's local list built and encoded, query
        # caches, the login machinery) is not per connection: profile-0 stations of the same
        # site warm it up first, and the idle RSS is taken after them.
        warm = _simulator(port, "mix", SATURATION_STATIONS, 0, True)
        json.loads(_wait_line(warm, "{"))
        run = _Mix(server, port, 1, lists=True)
        run.end()
    finally:
        if warm is not None:
            _say(warm, "exit")
            warm.wait(timeout=120)
        _stop(server)
    print(f"[profile 1, {database}, {run.connected['connected']} stations, compression off] "
          f"booted in {run.connected['seconds']:.1f} s, server RSS idle "
          f"{run.rss_idle / 1024:.0f} MiB, connected {run.rss_connected / 1024:.0f} MiB -> "
          f"{run.kib_per_connection:.1f} KiB per idle connection (after {SATURATION_STATIONS} "
          "profile-0 stations of the site warmed the server up; target: under 40)",
          flush=True)


def _saturate(server_args: list[str], profile: int, lists: bool) -> dict[str, Any]:
    """Heartbeats back to back; the figures with the server's CPU seconds over the window."""
    port = _free_port()
    server = _server(*server_args, str(port))
    try:
        sim = _simulator(port, "saturate", SATURATION_STATIONS, profile, lists)
        json.loads(_wait_line(sim, "{"))
        before = cpu_s(server.pid)
        _say(sim, "go")
        result: dict[str, Any] = json.loads(_wait_line(sim, "{"))
        result["cpu"] = cpu_s(server.pid) - before
        _say(sim, "exit")
        sim.wait(timeout=120)
        return result
    finally:
        _stop(server)


def _postgres(server_url: str, bare_mix_cpu: float) -> None:
    """The same fleet on a fresh PostgreSQL database, created here and dropped after."""
    from sqlalchemy.engine import make_url

    from csms.db.scratch import scratch_database

    if make_url(server_url).host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("VOLTHAUS_BENCH_DATABASE_URL: the benchmark only targets 127.0.0.1")
    with scratch_database(server_url, "volthaus_bench_ocpp") as database_url:
        seconds = asyncio.run(import_site_file(database_url, STATIONS))
        print(f"[profile 1, PostgreSQL, {STATIONS} stations] site import with plain passwords "
              f"and {BADGES} accounts and badges: {seconds:.1f} s", flush=True)
        _mix_ratio(_fleet(database_url, "PostgreSQL"), bare_mix_cpu, "PostgreSQL")


def main() -> None:
    _raise_nofile()
    print(f"(profile-1 stations with their own passwords, {BADGES} households with badges, "
          f"imported with the login key; websocket compression on where not said otherwise; one "
          f"server process pinned to core {SERVER_CORE}, the "
          f"simulator to core {SIMULATOR_CORE}; 2 shared cores: figures are noisy)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        profile1 = max(STATIONS, SATURATION_STATIONS)
        seconds = asyncio.run(import_site_file(database_url, profile1, SATURATION_STATIONS))
        print(f"[profile 1, SQLite, {profile1} stations] site import with plain passwords, "
              f"{BADGES} accounts and badges (+ {SATURATION_STATIONS} profile-0 stations for "
              f"the extra line): {seconds:.1f} s", flush=True)
        ours_mix_cpu = _fleet(database_url, "SQLite")
        bare_mix_cpu = _bare_mix()
        _mix_ratio(ours_mix_cpu, bare_mix_cpu, "SQLite")
        _memory_without_compression(database_url, "SQLite")
        ours = _saturate(["serve", database_url], 1, lists=True)
        ours_p0 = _saturate(["serve", database_url], 0, lists=True)
    server_url = os.environ.get("VOLTHAUS_BENCH_DATABASE_URL") or os.environ.get(
        "VOLTHAUS_TEST_DATABASE_URL")
    if server_url:
        _postgres(server_url, bare_mix_cpu)
    else:
        print("[profile 1, PostgreSQL] skipped (set VOLTHAUS_BENCH_DATABASE_URL)", flush=True)
    bare_async = _saturate(["bare", "1"], 1, lists=False)
    bare_inline = _saturate(["bare", "0"], 1, lists=False)
    for name, figures in (
        ("profile 1, SQLite, ours", ours),
        ("profile 1 stations, bare server (no database), thread-pool validation", bare_async),
        ("profile 1 stations, bare server (no database), inline validation", bare_inline),
        ("extra: profile 0, SQLite, ours", ours_p0),
    ):
        print(f"[{name}, {SATURATION_STATIONS} stations] saturation: {figures['rate']:.0f} "
              f"Heartbeat/s, p50 {figures['p50'] * 1000:.1f} ms, "
              f"p99 {figures['p99'] * 1000:.1f} ms; server CPU "
              f"{figures['cpu'] / figures['messages'] * 1000:.3f} s per 1,000 Heartbeats",
              flush=True)

    def per_heartbeat(figures: dict[str, Any]) -> float:
        cpu: float = figures["cpu"] / max(figures["messages"], 1)
        return cpu

    print(f"[profile 1, SQLite, {SATURATION_STATIONS} stations] saturation ratio ours / bare: "
          f"Heartbeat/s {ours['rate'] / bare_async['rate']:.2f} (library default), "
          f"{ours['rate'] / bare_inline['rate']:.2f} (bare validating inline); server CPU per "
          f"Heartbeat {per_heartbeat(ours) / per_heartbeat(bare_async):.2f} (library default), "
          f"{per_heartbeat(ours) / per_heartbeat(bare_inline):.2f} (bare validating inline)",
          flush=True)


if __name__ == "__main__":
    _raise_nofile()
    command = sys.argv[1]
    if command == "serve":
        asyncio.run(_serve_ours(sys.argv[2], int(sys.argv[3]), "nocompression" not in sys.argv))
    elif command == "bare":
        asyncio.run(_serve_bare(int(sys.argv[3]), sys.argv[2] == "1"))
    elif command == "sim":
        asyncio.run(_simulate(sys.argv[2], json.loads(sys.argv[3])))
    else:
        raise SystemExit(f"unknown command {command!r}")
