"""The paid-use flow's cost per message, as a session grows: one real OCPP station (security
profile 1, with its password) on a real server, one 24-hour session with a meter value every
minute, the session hook (the billing flow: points stored, usage rated, hold raised, cost shown)
timed around each message: wall time, and this process's CPU time (steadier on a busy machine;
on PostgreSQL it leaves out the database server's own work).

Prints the hook's time per message at the start of the session, after 1, 6, 12 and 24 hours,
and for the stop (its settlement), for OCPP 1.6 and 2.0.1, on SQLite (and PostgreSQL when
VOLTHAUS_BENCH_DATABASE_URL names a server). VOLTHAUS_BENCH_BILLING_MINUTES sets the session's
length in minutes (1440).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.bus import LocalBus
from csms.charging.sessions import BillingService
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.db.scratch import scratch_database
from csms.inventory.sitefile import import_site
from csms.ocpp.commands import StationGateway
from csms.ocpp.server import OcppServer, ServerOptions
from csms.simulator.station import SimStation

ROOT = Path(__file__).resolve().parents[1]
MINUTES = int(os.environ.get("VOLTHAUS_BENCH_BILLING_MINUTES", "1440"))
T0 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
PASSWORDS = {"WB-A-01": "demo-password-A01", "WB-B-01": "demo-password-B01"}
MARKS = (("first 10", 0, 10), ("hour 1", 50, 60), ("hour 6", 350, 360),
         ("hour 12", 710, 720), ("hour 24", 1430, 1440))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class TimedHook:
    """The billing hook, timed per call (the station waits for each answer, so nothing else
    runs in the server meanwhile)."""

    def __init__(self, billing: BillingService) -> None:
        self.billing = billing
        self.times: list[float] = []
        self.cpu: list[float] = []

    async def transaction_event(self, event: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return await self.billing.transaction_event(event)
        finally:
            self.times.append(time.perf_counter() - started)
            self.cpu.append(time.process_time() - cpu)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


async def _session(sim: SimStation, clock: Clock, protocol: str) -> None:
    def at(minute: int) -> datetime:
        clock.now = T0 + timedelta(minutes=minute)
        return clock.now

    if protocol == "ocpp1.6":
        reply = await sim._call(call16.StartTransaction(
            connector_id=1, id_tag="04A2B3C4", meter_start=0, timestamp=_stamp(at(0))))
        tx = int(reply.transaction_id)
        for minute in range(1, MINUTES + 1):
            await sim._call(call16.MeterValues(
                connector_id=1, transaction_id=tx, meter_value=[{
                    "timestamp": _stamp(at(minute)), "sampled_value": [{
                        "value": str(minute * 100), "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh", "context": "Sample.Periodic"}]}]))
        await sim._call(call16.StopTransaction(
            meter_stop=MINUTES * 100, timestamp=_stamp(at(MINUTES + 1)), transaction_id=tx,
            reason="Local"))
        return

    def event(kind: str, seq: int, minute: int, trigger: str, **extra: Any) -> Any:
        return call201.TransactionEvent(
            event_type=kind, timestamp=_stamp(at(minute)), trigger_reason=trigger, seq_no=seq,
            transaction_info={"transaction_id": "bench-tx", "charging_state": "Charging"},
            meter_value=[{"timestamp": _stamp(at(minute)), "sampled_value": [{
                "value": minute * 100, "measurand": "Energy.Active.Import.Register",
                "unit_of_measure": {"unit": "Wh"}}]}],
            **extra)

    await sim._call(event("Started", 0, 0, "Authorized", evse={"id": 1, "connector_id": 1},
                          id_token={"id_token": "8A1F2C3D", "type": "ISO14443"}))
    for minute in range(1, MINUTES + 1):
        await sim._call(event("Updated", minute, minute, "MeterValuePeriodic"))
    await sim._call(event("Ended", MINUTES + 1, MINUTES + 1, "StopAuthorized"))


async def _run(url: str, label: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
        document = yaml.safe_load((ROOT / "examples" / "demo-site.yaml").read_text("utf-8"))
        for account in document["accounts"]:
            account["opening_balance"] = "100000.00"  # never out of credit here
        await import_site(engine, document)
        clock = Clock()
        bus = LocalBus(node_id="bench")
        await bus.start()
        billing = BillingService(session_factory(engine), clock=clock,
                                 commands=StationGateway(bus))
        hook = TimedHook(billing)
        server = OcppServer(
            engine=engine, bus=bus, clock=clock, heartbeat_interval_s=300,
            pending_retry_interval_s=60, options=ServerOptions(port=0, local_lists=False),
            authorizer=billing.authorize, session_hook=hook,
        )
        await server.start()
        try:
            for station_id, protocol in (("WB-A-01", "ocpp1.6"), ("WB-B-01", "ocpp2.0.1")):
                hook.times.clear()
                hook.cpu.clear()
                sim = SimStation(f"ws://127.0.0.1:{server.port}/ocpp", station_id,
                                 protocol=protocol, password=PASSWORDS[station_id])
                await sim.connect()
                await sim.boot()
                started = time.perf_counter()
                await _session(sim, clock, protocol)
                elapsed = time.perf_counter() - started
                await billing.drain()
                await sim.close()
                _report(label, protocol, "wall", hook.times, elapsed)
                _report(label, protocol, "cpu", hook.cpu, elapsed)
        finally:
            await server.stop()
            await billing.stop()
            await bus.stop()
    finally:
        await engine.dispose()


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.2f} ms" if values else "      -   "


def _report(label: str, protocol: str, kind: str, times: list[float], elapsed: float) -> None:
    marks: list[tuple[str, Callable[[], list[float]]]] = [
        (name, lambda lo=lo, hi=hi: times[lo:hi]) for name, lo, hi in MARKS if hi <= len(times)
    ]
    cells = "  ".join(f"{name}: {_ms(select())}" for name, select in marks)
    print(f"  {label:10s} {protocol:9s} {kind:4s} {len(times)} messages  {cells}  "
          f"stop: {_ms(times[-1:])}  total hook {sum(times):.2f} s of {elapsed:.2f} s",
          flush=True)


def main() -> None:
    from csms.logging import configure_logging

    configure_logging("WARNING", "console")
    print(f"  billing hook time per message (median), one {MINUTES}-minute session, "
          "profile 1 station", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run(f"sqlite:///{Path(folder) / 'bench.db'}", "sqlite"))
    server = os.environ.get("VOLTHAUS_BENCH_DATABASE_URL")
    if server:
        with scratch_database(server, "bench_billing") as url:
            asyncio.run(_run(url, "postgresql"))


if __name__ == "__main__":
    main()
