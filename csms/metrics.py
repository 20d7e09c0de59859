"""Prometheus metrics of one node, served at `/metrics`.

Counters and histograms of what passes through this process (OCPP messages, station commands,
meter poll overruns) live in `REGISTRY`, one per process as Prometheus expects. What the
database knows (open uses, wallet movements, the alert backlog) and what the node holds now
(connected stations) is read at each scrape: every node reports the installation's database
figures; dashboards take `max` of those across nodes, `sum` of the per-node ones.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

REGISTRY = CollectorRegistry(auto_describe=True)

OCPP_MESSAGES = Counter(
    "volthaus_ocpp_messages", "OCPP CALLs from stations, by action and how they were answered",
    ["protocol", "action", "result"], registry=REGISTRY)
COMMAND_SECONDS = Histogram(
    "volthaus_station_command_seconds",
    "Commands to stations (any node) until their answer, by operation and outcome",
    ["op", "outcome"], registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

_STATIONS = Gauge("volthaus_stations_connected", "Stations whose websocket this node holds",
                  registry=REGISTRY)
_OPEN_USES = Gauge("volthaus_open_uses", "Paid uses not yet settled (charging sessions, "
                   "laundry cycles, supply months), by kind", ["kind"], registry=REGISTRY)
_MOVEMENTS = Gauge("volthaus_wallet_movements", "Wallet journal entries so far, by kind",
                   ["kind"], registry=REGISTRY)
_ALERT_BACKLOG = Gauge("volthaus_alert_backlog", "Alerts written and not yet delivered",
                       registry=REGISTRY)
_POLL_OVERRUNS = Gauge(
    "volthaus_meter_poll_overruns", "Meter poll cycles of this node that took longer than their "
    "period, since it started", registry=REGISTRY)
_DUTY = Gauge("volthaus_duty_held", "1 while this node runs the device loops (laundry, meters, "
              "supply control)", registry=REGISTRY)
_READY = Gauge("volthaus_ready", "1 while this node takes traffic (readiness)",
               registry=REGISTRY)


async def scrape(
    db: AsyncSession, *, connected: int, ready: bool, poll_overruns: int, duty_held: bool
) -> bytes:
    """The exposition text, with the gauges read now."""
    from billing.models import PaidUse, UseStatus
    from wallet.models import AlertOutbox, JournalEntry

    _STATIONS.set(connected)
    _READY.set(1 if ready else 0)
    _POLL_OVERRUNS.set(poll_overruns)
    _DUTY.set(1 if duty_held else 0)
    open_uses: dict[str, Any] = dict((await db.exec(
        select(PaidUse.kind, func.count()).where(col(PaidUse.status) == UseStatus.ACTIVE)
        .group_by(col(PaidUse.kind)))).all())
    for kind in {"charging", "laundry", "supply", *open_uses}:
        _OPEN_USES.labels(kind=kind).set(open_uses.get(kind, 0))
    for kind, count in (await db.exec(
            select(JournalEntry.kind, func.count()).group_by(col(JournalEntry.kind)))).all():
        _MOVEMENTS.labels(kind=kind).set(count)
    backlog = (await db.exec(select(func.count()).select_from(AlertOutbox).where(
        col(AlertOutbox.sent_at).is_(None)))).one()
    _ALERT_BACKLOG.set(backlog)
    return generate_latest(REGISTRY)
