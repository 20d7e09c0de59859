"""The site's apartment meters read over Modbus, every reading stored.

One `PollPlan` per gateway (host, port, transport), on the gateway's one owner from
`ModbusGateways`, which the relays and machines behind the same gateway share: relay writes go
first on the line, a failing meter is backed off step by step by the owner and fails fast
meanwhile, so it never stalls the other meters of its line. Gateways are polled side by side.

What a cycle read is stored after its reads, in one transaction: each reading by
`meters.readings.store_reading` together with the `on_reading` hook (supply billing), so a
reading and its debit are kept together or not at all; should one fail, each is stored again
in a transaction of its own, so a failing one costs only itself. A failed poll is recorded
on the meter's standing (`meter_state.failures`, `backed_off_until`). A cycle (reads and
storing) that takes longer than its period is reported: the `overruns` counter and the log
event `meter_poll_overrun`.

The meters come from the meter table (the site file's `meters`), read again by `reload()`: on a
call (after a site import) and every `reload_s` while `run()` runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.drivers.modbus_gateway import ModbusGateway, ModbusGateways, Transport
from amenities.drivers.poll_plan import CycleReport, Overrun, PollPlan
from meters.models import Meter
from meters.profiles import BUILTIN, MeterProfile
from meters.reading import ModbusMeter
from meters.readings import (
    DEFAULT_POLL_S,
    StoredReading,
    record_failure,
    site_profiles,
    store_reading,
)
from meters.registers import MeterValues

log = structlog.get_logger("meters.poller")

Clock = Callable[[], datetime]
OnReading = Callable[[AsyncSession, StoredReading], Awaitable[None]]
GatewayKey = tuple[str, int, Transport]


@dataclass(slots=True)
class _Polled:
    """A meter as polled: its row (detached, read at the last reload), profile and gateway."""

    meter: Meter
    profile: MeterProfile
    gateway: ModbusGateway
    unit: int
    signature: tuple[Any, ...]  # what, changed in the site file, means polling it anew


@dataclass(slots=True)
class _Read:
    polled: _Polled
    at: datetime
    values: MeterValues


@dataclass(slots=True)
class _Failed:
    polled: _Polled
    reason: str
    until: datetime | None


@dataclass(slots=True)
class _Line:
    plan: PollPlan[MeterValues]
    task: asyncio.Task[None] | None = None
    pending: list[_Read | _Failed] = field(default_factory=list)  # this cycle's, to store


class MeterPoller:
    """Polls every meter of the meter table (of `site_id` only, when given).

    `on_reading(db, stored)` runs for every reading stored (billable or not), in the
    transaction that stores it, and must do nothing outside it: when another reading of the
    cycle fails, the transaction is rolled back and the hook runs again for the same reading in
    a transaction of its own."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gateways: ModbusGateways,
        *,
        clock: Clock,
        on_reading: OnReading | None = None,
        site_id: str | None = None,
        reload_s: float = 300.0,
    ) -> None:
        self._sessions = sessions
        self._gateways = gateways
        self._clock = clock
        self._on_reading = on_reading
        self._site_id = site_id
        self._reload_s = reload_s
        self._meters: dict[str, _Polled] = {}
        self._lines: dict[GatewayKey, _Line] = {}
        self._running = False
        self._sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
        #: Cycles (of any gateway) that took longer than their period.
        self.overruns = 0
        #: Readings stored, polls failed, readings whose storing failed (since start).
        self.stored = 0
        self.failed = 0
        self.lost = 0
        #: The latest cycles' durations in seconds, of every gateway (for figures).
        self.cycle_seconds: deque[float] = deque(maxlen=100_000)

    # -- what is polled -------------------------------------------------------------------------

    @property
    def meter_ids(self) -> list[str]:
        return sorted(self._meters)

    def plan(self, host: str, port: int = 502, transport: Transport = "tcp") -> PollPlan[Any]:
        """The poll plan of one gateway (KeyError when no meter is behind it)."""
        return self._lines[(host, port, transport)].plan

    async def reload(self) -> None:
        """Read the meter table again: new meters join their gateway's plan (read in its next
        cycle), removed ones leave it, changed ones (address, profile, period) are polled
        anew. A meter whose profile or gateway cannot be had is skipped with a log line."""
        async with self._sessions() as db:
            query = select(Meter).order_by(col(Meter.id))
            if self._site_id is not None:
                query = query.where(col(Meter.site_id) == self._site_id)
            meters: list[Meter] = list((await db.exec(query)).all())
            custom = {
                site: await site_profiles(db, [site])
                for site in {m.site_id for m in meters if m.profile not in BUILTIN}
            }
        wanted: dict[str, Meter] = {m.id: m for m in meters}
        for meter_id in [m for m in self._meters if m not in wanted]:
            self._drop(meter_id)
        for meter in meters:
            signature = (meter.profile, repr(sorted(meter.modbus.items())), meter.poll_s,
                         meter.site_id)
            known = self._meters.get(meter.id)
            if known is not None and known.signature == signature:
                known.meter = meter  # account or tariff may have changed: billed as it is now
                continue
            if known is not None:
                self._drop(meter.id)
            polled = self._polled(meter, custom.get(meter.site_id, {}), signature)
            if polled is not None:
                self._add(polled)
        for key in [k for k, line in self._lines.items() if not line.plan.keys]:
            line = self._lines.pop(key)
            if line.task is not None:
                line.task.cancel()
        if self._running:
            for key, line in self._lines.items():
                if line.task is None:
                    line.task = asyncio.create_task(self._run_line(key, line),
                                                    name=f"meters {key[0]}:{key[1]}")
        log.info("meters_loaded", meters=len(self._meters), gateways=len(self._lines),
                 site=self._site_id)

    def _polled(
        self, meter: Meter, custom: dict[str, MeterProfile], signature: tuple[Any, ...]
    ) -> _Polled | None:
        profile = BUILTIN.get(meter.profile) or custom.get(meter.profile)
        if profile is None:
            log.error("meter_not_polled", meter=meter.id, site=meter.site_id,
                      reason=f"unknown meter profile {meter.profile!r}")
            return None
        modbus = meter.modbus
        try:
            gateway = self._gateways.gateway(
                str(modbus["host"]), int(modbus.get("port", 502)), modbus.get("transport", "tcp")
            )
            unit = int(modbus.get("unit", 1))
        except (KeyError, TypeError, ValueError) as error:
            log.error("meter_not_polled", meter=meter.id, site=meter.site_id, reason=str(error))
            return None
        return _Polled(meter, profile, gateway, unit, signature)

    def _add(self, polled: _Polled) -> None:
        gateway = polled.gateway
        key: GatewayKey = (gateway.host, gateway.port, gateway.transport)
        line = self._lines.get(key)
        if line is None:
            line = _Line(PollPlan(
                cycle_s=float(DEFAULT_POLL_S),
                clock=self._clock,
                on_result=self._on_result,
                on_failure=self._on_failure,
                on_overrun=functools.partial(self._on_overrun, key),
                name=f"meters {gateway.host}:{gateway.port}",
            ))
            self._lines[key] = line
        meter = ModbusMeter(
            functools.partial(gateway.read_registers, polled.unit),
            polled.profile,
            address=f"{polled.profile.id} {gateway.address(polled.unit)}",
        )
        period = polled.meter.poll_s or DEFAULT_POLL_S
        line.plan.add(polled.meter.id, period, meter.read_values)
        self._meters[polled.meter.id] = polled
        self._retime(key)

    def _drop(self, meter_id: str) -> None:
        polled = self._meters.pop(meter_id)
        gateway = polled.gateway
        key: GatewayKey = (gateway.host, gateway.port, gateway.transport)
        line = self._lines.get(key)
        if line is not None:
            line.plan.remove(meter_id)
            self._retime(key)

    def _retime(self, key: GatewayKey) -> None:
        # The cycle is the largest period that divides every meter's (gcd), so each meter is
        # read on its own period rather than rounded up to the next whole cycle.
        periods = [
            p.meter.poll_s or DEFAULT_POLL_S for p in self._meters.values()
            if (p.gateway.host, p.gateway.port, p.gateway.transport) == key
        ]
        if periods:
            self._lines[key].plan.cycle_s = float(reduce(math.gcd, periods))

    # -- polling ----------------------------------------------------------------------------------

    async def poll_once(self) -> list[CycleReport]:
        """One cycle of every gateway, side by side (the meters due in it), each with its
        readings stored; loads the meters first if they were never loaded."""
        if not self._meters and not self._lines:
            await self.reload()
        lines = list(self._lines.items())
        return list(await asyncio.gather(*(self._cycle(key, line) for key, line in lines)))

    async def run(
        self, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    ) -> None:
        """Poll until cancelled: every gateway's cycles side by side, the meter table read again
        every `reload_s`."""
        self._sleep = sleep
        self._running = True
        try:
            await self.reload()
            while True:
                await sleep(self._reload_s)
                try:
                    await self.reload()
                except Exception as error:  # the database away for a moment: keep polling
                    log.error("meters_reload_failed", exc_info=error)
        finally:
            self._running = False
            tasks = [line.task for line in self._lines.values() if line.task is not None]
            for line in self._lines.values():
                line.task = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_line(self, key: GatewayKey, line: _Line) -> None:
        while True:
            report = await self._cycle(key, line)
            rest = line.plan.cycle_s - (self._clock() - report.started).total_seconds()
            # At once after an overrun: a late cycle is not made later still.
            await self._sleep(max(rest, 0.0))

    async def _cycle(self, key: GatewayKey, line: _Line) -> CycleReport:
        """The plan's cycle (writes, due reads), then what it read stored. The cycle's length
        includes the storing: an overrun is a line that cannot keep up, whichever half is
        slow."""
        report = await line.plan.run_cycle()
        await self._store(line)
        took_s = (self._clock() - report.started).total_seconds()
        if took_s > line.plan.cycle_s and not report.overrun:
            self._on_overrun(key, Overrun(report.started, took_s, line.plan.cycle_s))
        self.cycle_seconds.append(took_s)
        return dataclasses.replace(report, took_s=took_s,
                                   overrun=report.overrun or took_s > line.plan.cycle_s)

    # -- what a cycle hands back ------------------------------------------------------------------

    def _line_of(self, meter_id: str) -> tuple[_Polled, _Line] | None:
        polled = self._meters.get(meter_id)
        if polled is None:  # removed by a reload while its read was under way
            return None
        gateway = polled.gateway
        line = self._lines.get((gateway.host, gateway.port, gateway.transport))
        return None if line is None else (polled, line)

    def _on_result(self, meter_id: str, values: MeterValues) -> None:
        found = self._line_of(meter_id)
        if found is not None:
            # Whole seconds: readings are billed by the second, and two polls of a meter in
            # one second are one reading.
            found[1].pending.append(_Read(found[0], self._clock().replace(microsecond=0),
                                          values))

    def _on_failure(self, meter_id: str, error: Exception) -> None:
        found = self._line_of(meter_id)
        if found is not None:
            polled = found[0]
            found[1].pending.append(_Failed(polled, str(error),
                                            polled.gateway.backed_off_until(polled.unit)))

    async def _store(self, line: _Line) -> None:
        """A cycle's readings (each with its `on_reading` hook) and failed polls, in one
        transaction: one commit per cycle rather than per reading, because on SQLite a
        commit's fsync holds the event loop. Should any of them fail, the transaction is rolled
        back whole and each is stored again in a transaction of its own, so a reading and its
        debit are kept together or not at all and a failing one costs only itself. (Not
        savepoints: code below the hook, e.g. the wallet's cache of known ledger accounts,
        trusts a commit to mean that everything it wrote in the session was kept.)"""
        pending, line.pending = line.pending, []
        if not pending:
            return
        try:
            async with self._sessions() as db:
                unreachable = [item for item in pending if await self._store_one(db, item)]
                await db.commit()
        except Exception as error:
            log.warning("meter_cycle_stored_one_by_one", readings=len(pending), error=str(error))
        else:
            self._count(pending, unreachable)
            return
        kept: list[_Read | _Failed] = []
        unreachable = []
        for item in pending:
            try:
                async with self._sessions() as db:
                    if await self._store_one(db, item):
                        unreachable.append(item)
                    await db.commit()
            except Exception as error:
                # Nothing of it was kept (neither the reading nor its debit); the next reading
                # bills the span from the last billable one, so nothing is lost either.
                self.lost += isinstance(item, _Read)
                log.error("meter_reading_not_stored" if isinstance(item, _Read)
                          else "meter_failure_not_recorded", meter=item.polled.meter.id,
                          exc_info=error)
            else:
                kept.append(item)
        self._count(kept, unreachable)

    async def _store_one(self, db: AsyncSession, item: _Read | _Failed) -> bool:
        """Store one reading (and run its hook) or record one failed poll; True when the
        meter has just become unreachable."""
        meter = item.polled.meter
        if isinstance(item, _Read):
            reading = await store_reading(db, meter, item.at, item.values,
                                          profile=item.polled.profile, received_at=item.at)
            if self._on_reading is not None:
                await self._on_reading(db, reading)
            return False
        state = await record_failure(db, meter.id, item.reason, item.until)
        return state.failures == 1

    def _count(self, kept: list[_Read | _Failed], unreachable: list[_Read | _Failed]) -> None:
        self.stored += sum(isinstance(item, _Read) for item in kept)
        self.failed += sum(isinstance(item, _Failed) for item in kept)
        for item in unreachable:  # the gateway logs each failure; this says the meter is out
            if isinstance(item, _Failed):
                log.warning("meter_unreachable", meter=item.polled.meter.id,
                            site=item.polled.meter.site_id, reason=item.reason)

    def _on_overrun(self, key: GatewayKey, overrun: Overrun) -> None:
        self.overruns += 1
        log.warning(
            "meter_poll_overrun",
            gateway=f"{key[0]}:{key[1]}",
            transport=key[2],
            took_s=round(overrun.took_s, 3),
            cycle_s=overrun.cycle_s,
            meters=len(self._lines[key].plan.keys) if key in self._lines else 0,
            overruns=self.overruns,
        )
