"""N simulated stations against one server: connect, boot, heartbeat, badge, charge, stop.

Used by `volthaus simulate` and the benchmark; reports per-message round trips.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from csms.simulator.station import PROTOCOL_16, SimStation


@dataclass
class FleetPlan:
    url: str
    count: int
    protocol: str = PROTOCOL_16  # or "mixed": every other station 2.0.1
    id_prefix: str = "SIM-"
    password: str | None = None
    # Each station its own password (a real site): this gives it; else `password` for all.
    password_for: Callable[[str], str] | None = None
    id_tag: str = "04A2B3C4"
    heartbeat_s: float = 60.0
    power_w: float = 11000.0
    meter_interval_s: float = 10.0
    charge_s: float = 60.0
    # Share of stations charging at any time; the others idle between sessions.
    charging_share: float = 0.3
    duration_s: float = 60.0
    connect_rate: float = 500.0  # new connections per second
    ssl_context: ssl.SSLContext | None = None
    # The simulator's own schema checks of what it sends and receives (off for load tests).
    check_schemas: bool = True


@dataclass
class FleetReport:
    connected: int = 0
    failed: int = 0
    booted: int = 0
    boot_seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Messages sent at or after this `time.perf_counter()` instant are not counted: the
    # sessions every station closes at the end of a run would be a burst no real fleet sends.
    window_end: float | None = None

    def record(self, action: str, seconds: float) -> None:
        if self.window_end is not None and time.perf_counter() - seconds >= self.window_end:
            return
        self.latencies[action].append(seconds)

    @property
    def messages(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def percentile(self, q: float, action: str | None = None) -> float:
        values = sorted(
            self.latencies[action] if action else [x for v in self.latencies.values() for x in v]
        )
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]


def station_ids(plan: FleetPlan) -> list[str]:
    return [f"{plan.id_prefix}{number:05d}" for number in range(plan.count)]


def protocol_of(plan: FleetPlan, index: int) -> str:
    if plan.protocol == "mixed":
        return PROTOCOL_16 if index % 2 == 0 else "ocpp2.0.1"
    return plan.protocol


async def connect_fleet(plan: FleetPlan, report: FleetReport) -> list[SimStation]:
    """Connect and boot every station, paced at `connect_rate`; failures are counted."""
    stations: list[SimStation] = []
    started = time.perf_counter()

    async def one(index: int, station_id: str) -> None:
        station = SimStation(
            plan.url,
            station_id,
            protocol=protocol_of(plan, index),
            password=plan.password_for(station_id) if plan.password_for else plan.password,
            ssl_context=plan.ssl_context,
            record_latency=report.record,
            ping_interval=None,
            open_timeout=120,
            check_schemas=plan.check_schemas,
            keep_received=False,
        )
        try:
            await station.connect()
            report.connected += 1
            if await station.boot() == "Accepted":
                report.booted += 1
            stations.append(station)
        except Exception as error:
            report.failed += 1
            report.errors[type(error).__name__] += 1

    tasks = []
    for index, station_id in enumerate(station_ids(plan)):
        tasks.append(asyncio.create_task(one(index, station_id)))
        await asyncio.sleep(1 / plan.connect_rate)
    await asyncio.gather(*tasks)
    report.boot_seconds = time.perf_counter() - started
    return stations


async def drive(station: SimStation, plan: FleetPlan, report: FleetReport, until: float) -> None:
    """One station's life until `until`: heartbeats at its interval, and sessions (authorize,
    start, meter values every `meter_interval_s`, stop) for its share of the time."""
    rng = random.Random(station.station_id)
    await asyncio.sleep(rng.uniform(0, min(plan.heartbeat_s, plan.meter_interval_s * 3)))
    next_heartbeat = time.monotonic() + plan.heartbeat_s

    async def heartbeat_if_due() -> None:
        nonlocal next_heartbeat
        if next_heartbeat <= time.monotonic() < until:
            await station.heartbeat()
            next_heartbeat = time.monotonic() + plan.heartbeat_s

    try:
        await station.status(1, "Available")
        while time.monotonic() < until:
            if rng.random() < plan.charging_share:
                await station.authorize(plan.id_tag)
                session = await station.start(plan.id_tag)
                await station.status(1, "Charging")
                end = time.monotonic() + plan.charge_s
                while time.monotonic() < min(end, until):
                    await asyncio.sleep(plan.meter_interval_s)
                    await station.meter(session, plan.power_w, plan.meter_interval_s)
                    await heartbeat_if_due()
                await station.stop(session)
                await station.status(1, "Available")
            else:
                idle_end = min(time.monotonic() + plan.charge_s, until)
                while time.monotonic() < idle_end:
                    wake = min(idle_end, next_heartbeat)
                    await asyncio.sleep(max(0.0, wake - time.monotonic()))
                    await heartbeat_if_due()
    except Exception as error:
        report.errors[type(error).__name__] += 1


async def run_fleet(plan: FleetPlan) -> FleetReport:
    report = FleetReport()
    stations = await connect_fleet(plan, report)
    until = time.monotonic() + plan.duration_s
    try:
        await asyncio.gather(*(drive(s, plan, report, until) for s in stations))
    finally:
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
    return report
