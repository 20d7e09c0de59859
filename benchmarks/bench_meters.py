"""Apartment meters at scale (`python -m benchmarks meters`): 1,000 Eastron SDM630 meters behind
50 emulated Modbus TCP gateways (20 per line), polled by the real `MeterPoller` with every
reading stored in SQLite (plausibility, meter_state, one transaction per reading).

The gateways are pymodbus servers in a separate process, holding each meter's documented input
registers (csms/simulator/meters.py) with the import register counting up, so the
poller's process is measured alone: its CPU share of one core, its memory (RSS), the cycle
duration of each gateway's line (p50, p99, max), readings stored per minute and overruns.
The gateways' process CPU is reported beside it.

The meters' period is 60 s in the site file; to keep the run short it is compressed to
VOLTHAUS_BENCH_METERS_POLL_S (20 s) and the run measures VOLTHAUS_BENCH_METERS_CYCLES (3)
cycles after a first one that opens the connections. CPU per cycle is what a cycle costs
whatever its period; the share at the real 60 s is that divided by 60, printed beside the
share measured at the compressed period. VOLTHAUS_BENCH_METERS_POLL_S=60 measures it as is.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METERS = int(os.environ.get("VOLTHAUS_BENCH_METERS", "1000"))
GATEWAYS = int(os.environ.get("VOLTHAUS_BENCH_METERS_GATEWAYS", "50"))
POLL_S = int(os.environ.get("VOLTHAUS_BENCH_METERS_POLL_S", "20"))
CYCLES = int(os.environ.get("VOLTHAUS_BENCH_METERS_CYCLES", "3"))
REAL_POLL_S = 60
ENERGY_REGISTER = 0x0048  # SDM630 30073 Total Import kWh


# ---- the gateways' process ----------------------------------------------------------------


async def _serve_gateways(gateways: int, units: int) -> None:
    """`gateways` Modbus TCP servers of `units` SDM630 each; prints their ports as one JSON
    line, counts every meter's import register up every 5 s, runs until stdin closes."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    from csms.simulator.meters import f32, sdm630

    servers: list[ModbusTcpServer] = []
    for _ in range(gateways):
        devices = []
        for unit in range(1, units + 1):
            dump = sdm630(unit, power_w=800.0 + unit * 50).put(ENERGY_REGISTER,
                                                                f32(1000.0 * unit))
            # one block over the documented registers 0x0000..0x004F (the read spans
            # 0x0000..0x0049), the rest of the map left out
            words = [dump.words.get(address, 0) for address in range(0x50)]
            devices.append(SimDevice(unit, simdata=[
                SimData(0, values=words, datatype=DataType.REGISTERS)]))
        server = ModbusTcpServer(devices, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        servers.append(server)
    ports = [s.transport.sockets[0].getsockname()[1] for s in servers]  # type: ignore[union-attr]
    print(json.dumps({"ports": ports}), flush=True)

    async def count_up() -> None:
        kwh = {(g, u): 1000.0 * u for g in range(gateways) for u in range(1, units + 1)}
        while True:
            await asyncio.sleep(5)
            for (g, unit), value in kwh.items():
                kwh[(g, unit)] = value + (800 + unit * 50) * 5 / 3_600_000  # power x 5 s
                await servers[g].async_setValues(unit, 4, ENERGY_REGISTER,
                                                 f32(kwh[(g, unit)]))

    counter = asyncio.create_task(count_up())
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    counter.cancel()
    for server in servers:
        await server.shutdown()


# ---- the poller's process (this one) --------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _status_kib(pid: int | str, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _site(ports: list[int], per_gateway: int) -> dict[str, Any]:
    meters, accounts = [], []
    for g, port in enumerate(ports):
        for unit in range(1, per_gateway + 1):
            ref = f"f-{g:02d}-{unit:02d}"
            accounts.append({"id": ref, "name": f"Flat {ref}"})
            meters.append({
                "id": f"m-{g:02d}-{unit:02d}", "account": ref, "profile": "eastron-sdm630",
                "modbus": {"host": "127.0.0.1", "port": port, "unit": unit},
                "tariff": "household", "poll_s": POLL_S,
            })
    return {
        "site": {"id": "bench", "name": "Bench", "timezone": "Europe/Berlin", "currency": "EUR",
                 "country": "DE"},
        "tariffs": [{"id": "household", "name": "Haushaltsstrom", "currency": "EUR",
                     "vat_percent": "19", "components": [
                         {"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.30"}]}]}],
        "accounts": accounts,
        "meters": meters,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(ports: list[int], per_gateway: int, server_pid: int) -> None:
    from amenities.drivers.modbus_gateway import ModbusGateways, system_clock
    from csms.db.engine import create_engine, session_factory
    from csms.db.migrate import upgrade_database
    from csms.inventory.sitefile import import_site
    from csms.logging import configure_logging
    from meters.poller import MeterPoller

    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'meters.db'}")
        await upgrade_database(engine)
        started = time.perf_counter()
        await import_site(engine, _site(ports, per_gateway))
        print(f"site with {len(ports) * per_gateway} meters imported in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        gateways = ModbusGateways(timeout_s=2.0)
        poller = MeterPoller(session_factory(engine), gateways, clock=system_clock,
                             reload_s=3600)
        meters = len(ports) * per_gateway
        rss_before = _status_kib("self", "VmRSS")
        polling_since = time.perf_counter()
        task = asyncio.create_task(poller.run())
        # the first cycle opens the connections: not measured
        while poller.stored + poller.failed + poller.lost < meters:
            await asyncio.sleep(0.05)
        first = list(poller.cycle_seconds)
        # the window runs from half a period in for CYCLES periods: it holds the cycles that
        # start at 1, 2, ... CYCLES periods whole (while each takes under half a period)
        await asyncio.sleep(max(polling_since + POLL_S / 2 - time.perf_counter(), 0))
        window_start = time.perf_counter()
        cpu_start, server_cpu_start = time.process_time(), _proc_cpu_s(server_pid)
        stored_start, cycles_start = poller.stored, len(poller.cycle_seconds)
        overruns_start = poller.overruns
        await asyncio.sleep(CYCLES * POLL_S)
        window = time.perf_counter() - window_start
        cpu = time.process_time() - cpu_start
        server_cpu = _proc_cpu_s(server_pid) - server_cpu_start
        stored = poller.stored - stored_start
        cycles = list(poller.cycle_seconds)[cycles_start:]
        overruns = poller.overruns - overruns_start
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gateways.close()
        rss, peak = _status_kib("self", "VmRSS"), _status_kib("self", "VmHWM")
        await engine.dispose()

    per_cycle_cpu = cpu / (window / POLL_S)
    label = "" if POLL_S == REAL_POLL_S else f" (compressed from {REAL_POLL_S} s)"
    print(f"meters: {meters} SDM630 behind {len(ports)} gateways, poll_s {POLL_S}{label}, "
          f"{window:.0f} s measured after a first cycle of {max(first, default=0):.2f} s")
    print(f"  poller CPU: {cpu:.2f} s = {100 * cpu / window:.1f} % of one core at "
          f"{POLL_S} s; {per_cycle_cpu:.2f} s per cycle of all meters -> "
          f"{100 * per_cycle_cpu / REAL_POLL_S:.1f} % of one core at {REAL_POLL_S} s")
    print(f"  poller memory: RSS {rss / 1024:.0f} MiB (peak {peak / 1024:.0f} MiB; "
          f"{rss_before / 1024:.0f} MiB before polling)")
    if cycles:
        print(f"  gateway cycle ({per_gateway} meters read and stored): "
              f"p50 {statistics.median(cycles):.3f} s, p99 {_pct(cycles, 0.99):.3f} s, "
              f"max {max(cycles):.3f} s over {len(cycles)} cycles")
    print(f"  readings stored: {stored} = {stored / (window / 60):.0f} per minute at {POLL_S} s "
          f"({stored / (window / 60) * POLL_S / REAL_POLL_S:.0f} per minute at "
          f"{REAL_POLL_S} s); failed polls {poller.failed}, lost {poller.lost}")
    print(f"  overruns: {overruns}")
    print(f"  gateways' process (pymodbus, not ours): CPU {server_cpu:.2f} s = "
          f"{100 * server_cpu / window:.1f} % of one core", flush=True)


def main() -> None:
    per_gateway = max(1, METERS // GATEWAYS)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_meters", "gateways", str(GATEWAYS),
         str(per_gateway)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the gateways' process ended early")
        ports = json.loads(line)["ports"]
        # keep its pipe drained (a full pipe would stall it)
        threading.Thread(target=process.stdout.read, daemon=True).start()
        asyncio.run(_measure(ports, per_gateway, process.pid))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["gateways"]:
        asyncio.run(_serve_gateways(int(sys.argv[2]), int(sys.argv[3])))
    else:
        main()
