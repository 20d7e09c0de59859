"""Load management at work: every reading period (and at once when a session starts or stops
or a car states its needs) read the building meter, take what the stations draw from it, let
`allocation.allocate` decide, send the changed limits as charging profiles, and keep the result
for the API. It runs where the device loops run (one node at a time, `csms.duty`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.drivers.capabilities import DeviceUnreachable
from billing.models import PaidUse, UsagePoint, UseStatus
from csms.bus.interface import Bus
from csms.charging.models import ChargingSession
from csms.inventory.models import Station
from csms.load.allocation import Allocation, SessionLoad, allocate
from csms.load.grid_limits import active_limits, effective
from csms.load.models import ChargingNeed, LoadState, SiteLoad
from csms.load.settings import load_settings
from wallet.accounts import refs_of

log = structlog.get_logger("csms.load")
VOLTS = Decimal(230)
# A station that refused a profile or could not be reached counts as drawing its maximum for
# this long, then is tried again.
UNCONTROLLABLE_FOR = timedelta(minutes=5)


class LimitSender(Protocol):
    async def set_charging_limit(
        self, station_id: str, connector_id: int, limit_a: int | None, phases: int,
        transaction_id: str | None = None,
    ) -> bool: ...


class PhaseMeter(Protocol):
    async def read_values(self) -> Any: ...


@dataclass
class _SiteRun:
    allocation: Allocation = field(default_factory=Allocation)
    sent: dict[str, int] = field(default_factory=dict)  # key -> limit last accepted
    uncontrollable: dict[str, datetime] = field(default_factory=dict)  # key -> until


@dataclass(frozen=True, slots=True)
class OpenSession:
    key: str
    station_id: str
    connector: int
    transaction_id: str
    started_at: datetime
    account_id: str | None
    drawn_a: Decimal | None
    max_current_a: Decimal


class LoadController:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], stations: LimitSender,
        meter_of: Callable[[Mapping[str, Any]], PhaseMeter], *, clock: Callable[[], datetime],
        bus: Bus | None = None,
    ) -> None:
        self._sessions = sessions
        self._stations = stations
        self._meter_of = meter_of
        self._clock = clock
        self._bus = bus
        self._runs: dict[str, _SiteRun] = {}
        self._wake = asyncio.Event()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen()) if self._bus is not None else None
        try:
            while True:
                period = 10
                for site_id, section in await self._sites():
                    period = min(period, int(section.get("reading_period_s", 10)))
                    try:
                        await self.recompute(site_id, section)
                    except DeviceUnreachable as error:
                        # The stations keep their last limits and, failing those, the boot
                        # fallback: nothing is raised until the meter answers again.
                        log.warning("load.meter_unreachable", site_id=site_id, reason=str(error))
                    except Exception:
                        log.warning("load.recompute_failed", site_id=site_id, exc_info=True)
                self._wake.clear()
                woken = False
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(period):
                        await self._wake.wait()
                        woken = True
                if woken:
                    # Woken by a start: let the station have its answer (the transaction id a
                    # TxProfile names) before the profile arrives.
                    await asyncio.sleep(0.5)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self) -> None:
        """Session starts and stops, status changes and cars' needs wake the loop at once."""
        assert self._bus is not None
        async with self._bus.subscribe("station.*") as events:
            async for event in events:
                if event.topic.rsplit(".", 1)[-1] in (
                        "transaction", "session", "status", "charging_need", "boot"):
                    self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _sites(self) -> list[tuple[str, dict[str, Any]]]:
        async with self._sessions() as db:
            rows = (await db.exec(select(SiteLoad))).all()
            return [(row.site_id, dict(row.section)) for row in rows]

    async def recompute(self, site_id: str, section: dict[str, Any]) -> Allocation:
        now = self._clock()
        settings = load_settings(section)
        run = self._runs.setdefault(site_id, _SiteRun())
        building = await self._building_currents(section)
        async with self._sessions() as db:
            open_sessions = await self._open_sessions(db, site_id)
            limits = await active_limits(db, site_id, now)
            needs = await self._needs(db, [s.station_id for s in open_sessions])
            refs = await refs_of(db, [s.account_id for s in open_sessions if s.account_id])
        site_limit, station_limits = effective(limits)
        if site_limit is not None:
            settings = _replace_limit(settings, min(settings.limit_a, site_limit))
        phases = tuple(range(1, settings.phases + 1))
        priorities = section.get("priorities") or {}
        loads: list[SessionLoad] = []
        for s in open_sessions:
            until = run.uncontrollable.get(s.key)
            cap = min(s.max_current_a, station_limits.get(s.station_id, s.max_current_a))
            need = needs.get((s.station_id, s.connector))
            loads.append(SessionLoad(
                key=s.key, phases=phases, max_current_a=cap, started_at=s.started_at,
                drawn_a=s.drawn_a, priority=int(priorities.get(refs.get(s.account_id or ""), 0)),
                departure=need.departure_at if need is not None else None,
                controllable=until is None or until <= now))
        # The building's own load: what the meter sees minus what the wallboxes draw now.
        drawn = sum((s.drawn_a or Decimal(0) for s in open_sessions), Decimal(0))
        base = {p: max(building.get(p, Decimal(0)) - drawn, Decimal(0)) for p in phases}
        allocation = allocate(settings, base, loads, run.allocation, now)
        run.allocation = allocation
        by_key = {s.key: s for s in open_sessions}
        for key, granted in allocation.granted.items():
            amps = int(granted.limit_a)
            if run.sent.get(key) == amps:
                continue
            session = by_key[key]
            accepted = await self._stations.set_charging_limit(
                session.station_id, session.connector, amps, settings.phases,
                transaction_id=session.transaction_id)
            if accepted:
                run.sent[key] = amps
                log.info("load.limit", site_id=site_id, station_id=session.station_id,
                         connector=session.connector, limit_a=amps)
            else:
                run.uncontrollable[key] = now + UNCONTROLLABLE_FOR
                run.sent.pop(key, None)
                log.warning("load.limit_refused", site_id=site_id,
                            station_id=session.station_id, connector=session.connector)
        for key in list(run.sent):
            if key not in by_key:
                del run.sent[key]  # the session ended
        await self._store(site_id, now, settings.limit_a, settings.reserve_a, building, base,
                          open_sessions, allocation, limits, run)
        return allocation

    async def _building_currents(self, section: dict[str, Any]) -> dict[int, Decimal]:
        meter = self._meter_of(section["building_meter"])
        values = await meter.read_values()
        currents = [values.current_l1_a, values.current_l2_a, values.current_l3_a]
        if any(c is None for c in currents[: int(section.get("phases", 3))]):
            # A meter without currents: its power spread over the phases.
            power = values.power_w or Decimal(0)
            per_phase = power / (VOLTS * int(section.get("phases", 3)))
            return {p: per_phase for p in (1, 2, 3)}
        return {p: Decimal(c) for p, c in enumerate(currents, start=1) if c is not None}

    async def _open_sessions(self, db: AsyncSession, site_id: str) -> list[OpenSession]:
        rows = (await db.exec(
            select(ChargingSession, PaidUse, Station)
            .join(PaidUse, col(PaidUse.id) == col(ChargingSession.use_id))
            .join(Station, col(Station.id) == col(ChargingSession.station_id))
            .where(col(PaidUse.site_id) == site_id, col(PaidUse.status) == UseStatus.ACTIVE)
        )).all()
        found = []
        for charging, use, station in rows:
            connector = charging.evse_id or charging.connector_id or 1
            found.append(OpenSession(
                key=f"{charging.station_id}/{connector}", station_id=charging.station_id,
                connector=connector, transaction_id=charging.station_tx_id,
                started_at=use.started_at or self._clock(), account_id=use.account_id,
                drawn_a=await _drawn_a(db, use.id or 0),
                max_current_a=(Decimal(station.max_power_w) / (VOLTS * 3)).quantize(
                    Decimal(1)),
            ))
        return found

    async def _needs(self, db: AsyncSession, station_ids: list[str]
                     ) -> dict[tuple[str, int], ChargingNeed]:
        if not station_ids:
            return {}
        rows = (await db.exec(select(ChargingNeed).where(
            col(ChargingNeed.station_id).in_(station_ids)))).all()
        return {(r.station_id, r.evse_id): r for r in rows}

    async def _store(self, site_id: str, now: datetime, limit_a: Decimal, reserve_a: Decimal,
                     building: dict[int, Decimal], base: dict[int, Decimal],
                     sessions: list[OpenSession], allocation: Allocation, limits: list[Any],
                     run: _SiteRun) -> None:
        state = {
            "limit_a": str(limit_a), "reserve_a": str(reserve_a),
            "building_a": {str(p): str(v.quantize(Decimal("0.1"))) for p, v in building.items()},
            "base_load_a": {str(p): str(v.quantize(Decimal("0.1"))) for p, v in base.items()},
            "sessions": [{
                "station_id": s.station_id, "connector": s.connector,
                "transaction_id": s.transaction_id,
                "drawn_a": None if s.drawn_a is None else str(s.drawn_a),
                "limit_a": (str(allocation.granted[s.key].limit_a)
                            if s.key in allocation.granted else None),
                "paused": s.key in allocation.granted
                and allocation.granted[s.key].limit_a == 0,
                "controllable": s.key not in run.uncontrollable
                or run.uncontrollable[s.key] <= now,
            } for s in sessions],
            "grid_limits": [{"id": g.id, "station_id": g.station_id, "limit_a": str(g.limit_a),
                             "ends_at": g.ends_at.isoformat()} for g in limits],
        }
        async with self._sessions() as db:
            await db.merge(LoadState(site_id=site_id, computed_at=now, state=state))
            await db.commit()


async def _drawn_a(db: AsyncSession, use_id: int) -> Decimal | None:
    """Per phase (three assumed), from the last two register readings of the use."""
    points = (await db.exec(
        select(UsagePoint).where(col(UsagePoint.use_id) == use_id,
                                 col(UsagePoint.register_wh).is_not(None))
        .order_by(col(UsagePoint.at).desc()).limit(2))).all()
    if len(points) < 2 or points[0].register_wh is None or points[1].register_wh is None:
        return None
    seconds = Decimal((points[0].at - points[1].at).total_seconds())
    if seconds <= 0:
        return None
    watts = Decimal(points[0].register_wh - points[1].register_wh) * 3600 / seconds
    return (max(watts, Decimal(0)) / (VOLTS * 3)).quantize(Decimal("0.1"))


def _replace_limit(settings: Any, limit_a: Decimal) -> Any:
    from dataclasses import replace

    return replace(settings, limit_a=limit_a)
