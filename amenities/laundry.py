"""Laundry and other relay-switched machines on the one paid-use flow (DESIGN.md).

A tap at a machine's reader asks the flow who pays, opens the use (the hold) and a cycle, and
switches the machine's relay on. While the cycle is open the controller reads the machine's
power and energy every `poll_s`, feeds the pure state machine of `amenities.cycle`, stores each
reading as a usage point and lets the flow rate it and raise the hold (or ask for a stop when
credit runs out). When the cycle ends, the relay goes off and the flow settles the use once; a
cycle that never started releases the hold and costs nothing.

Money through the flow: the use is kind "laundry", `use_ref` the cycle's id. Its usage starts at
the power start (running time counts from there) with the energy register as it was at the tap
(energy counts from the tap), and ends when the cycle ended. Hold raises are keyed by cycle and
reading number, the settlement by machine and cycle (`billing.flow`): whatever is replayed or
retried, money moves once.

Safety: the relay is switched on with a dead-man timer (`toggle_after` on a Shelly) that every
reading renews, so a machine never runs on for long after a lost backend; a relay that cannot be
reached or does not read back what was wanted is a fault of the machine (out of order, an alert
to staff), never a charge. Everything the controller knows lives in `amenity_cycle` and
`amenity_status`, so a restarted server resumes every open cycle where it stood.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.cycle import (
    Cycle,
    CycleSettings,
    CycleState,
    EndReason,
    on_power,
    on_time,
    stopped,
)
from amenities.drivers.capabilities import DeviceUnreachable, Measurement, Metering, Relay
from amenities.drivers.pool import DriverPool
from amenities.models import OPEN_CYCLE_STATES, Amenity, AmenityCycle, AmenityStatus, Reader
from amenities.tap_texts import refusal_message, tap_message
from amenities.taps import AmenityNotAtReader, AmenityRequired, TapAnswer, UnknownAmenity
from billing import CostShown, DeviceRef, NewPoint, PaidUseFlow, Unit, UseRef
from billing.payer import device_badge
from rfid.authorisation import AuthStatus
from wallet.alert_outbox import raise_alert
from wallet.ledger import dialect_insert, site_info

log = structlog.get_logger("amenities.laundry")

KIND = "laundry"  # the ledger's service name

# Readings beyond this are held for review. A machine on a 16 A relay draws at most 3,680 W;
# the first reading after the power start also carries what the machine drew between the tap
# and that start (at most one poll at full power), hence twice the relay's rating.
MAX_MACHINE_POWER_W = 2 * 3_680


@dataclass(frozen=True, slots=True)
class MachineDevices:
    """What the controller switches and reads for one machine."""

    relay: Relay
    # Where power and energy are read: the relay itself when it measures (a Shelly PM), a meter
    # of the `power` block, or None (the machine is then timed: it runs from the tap to max_s).
    meter: Metering | None


DevicesOf = Callable[[Amenity], MachineDevices]


def pool_devices(pool: DriverPool) -> DevicesOf:
    """A machine's drivers from its site-file blocks: the relay, and where its power is read
    (the `power` block's meter, else the relay when it measures)."""

    def devices_of(amenity: Amenity) -> MachineDevices:
        relay = pool.relay(amenity.relay)
        if amenity.power:
            return MachineDevices(relay, pool.meter(amenity.power))
        return MachineDevices(relay, relay if isinstance(relay, Metering) else None)

    return devices_of
# The tariff document of a site's tariff (the inventory's table is the composition root's).
TariffOf = Callable[[AsyncSession, str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class LaundryOptions:
    # How often the loop looks for cycles due for a reading.
    tick_s: float = 1.0
    # How often free and faulty machines' relays are checked.
    reconcile_s: float = 60.0


def dead_man_s(settings: CycleSettings) -> int:
    """The relay's own timer: renewed by every reading, it runs out only when the backend is
    gone for longer than a short restart."""
    return max(120, 4 * settings.poll_s)


def cycle_of(row: AmenityCycle) -> Cycle:
    return Cycle(
        state=CycleState(row.state), tapped_at=row.tapped_at, started_at=row.started_at,
        below_since=row.below_since, ended_at=row.ended_at,
        end_reason=EndReason(row.end_reason) if row.end_reason else None,
        last_reading_at=row.last_reading_at,
    )


def _store(row: AmenityCycle, cycle: Cycle) -> None:
    row.state = cycle.state.value
    row.started_at = cycle.started_at
    row.below_since = cycle.below_since
    row.ended_at = cycle.ended_at
    row.end_reason = cycle.end_reason.value if cycle.end_reason else None
    row.last_reading_at = cycle.last_reading_at


@dataclass(frozen=True, slots=True)
class _Reading:
    at: datetime
    measurement: Measurement | None
    error: str | None = None


class LaundryService:
    """One per node: the machines' controller and their `billing.Device`."""

    def __init__(
        self,
        flow: PaidUseFlow,
        devices_of: DevicesOf,
        tariff_of: TariffOf,
        *,
        options: LaundryOptions | None = None,
    ) -> None:
        self.flow = flow
        self.options = options or LaundryOptions()
        self._devices_of = devices_of
        self._tariff_of = tariff_of
        self._devices: dict[str, tuple[str, MachineDevices]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # When each relay's dead-man timer was last renewed (by relay address).
        self._renewed: dict[str, datetime] = {}
        flow.register(KIND, self)

    def clock(self) -> datetime:
        return self.flow.clock()

    # -- devices ------------------------------------------------------------------------------

    def devices(self, amenity: Amenity) -> MachineDevices:
        """The machine's drivers, built once per configuration."""
        key = repr((amenity.relay, amenity.power))
        cached = self._devices.get(amenity.id)
        if cached is None or cached[0] != key:
            cached = (key, self._devices_of(amenity))
            self._devices[amenity.id] = cached
        return cached[1]

    def _lock(self, amenity_id: str) -> asyncio.Lock:
        return self._locks.setdefault(amenity_id, asyncio.Lock())

    # -- taps ---------------------------------------------------------------------------------

    async def _amenity_for_tap(
        self, db: AsyncSession, site_id: str, reader_id: str, amenity_id: str | None
    ) -> Amenity:
        if amenity_id is None:
            served = (
                await db.exec(
                    select(Amenity).where(col(Amenity.site_id) == site_id)
                    .where(col(Amenity.reader) == reader_id).order_by(col(Amenity.id))
                )
            ).all()
            if len(served) != 1:
                raise AmenityRequired(reader_id, [a.id for a in served])
            return served[0]
        amenity = await db.get(Amenity, amenity_id)
        if amenity is None or amenity.site_id != site_id:
            raise UnknownAmenity(amenity_id)
        # A machine without a reader of its own is started at any reader of its site.
        if amenity.reader is not None and amenity.reader != reader_id:
            raise AmenityNotAtReader(amenity_id, reader_id)
        return amenity

    async def _device_ref(self, db: AsyncSession, amenity: Amenity) -> DeviceRef:
        site = await site_info(db, amenity.site_id)
        reader = await db.get(Reader, amenity.reader) if amenity.reader else None
        return DeviceRef(
            kind=KIND, device_id=amenity.id, site_id=amenity.site_id,
            tariff_id=amenity.tariff_id, idtag_format=reader.idtag_format if reader else "hex",
            timezone=site.timezone, location=amenity.building_id or amenity.site_id,
            max_power_w=MAX_MACHINE_POWER_W,
        )

    async def _status(self, unit: Unit, amenity: Amenity) -> AmenityStatus:
        """The machine's status row, locked (taps and readings of one machine queue on it)."""
        await unit.db.exec(
            dialect_insert(unit.db, AmenityStatus).values(
                amenity_id=amenity.id, site_id=amenity.site_id, since=unit.now,
            ).on_conflict_do_nothing()
        )
        status = (
            await unit.db.exec(
                select(AmenityStatus).where(col(AmenityStatus.amenity_id) == amenity.id)
                .with_for_update().execution_options(populate_existing=True)
            )
        ).one()
        return status

    async def _open_cycle(self, db: AsyncSession, amenity_id: str) -> AmenityCycle | None:
        return (
            await db.exec(
                select(AmenityCycle).where(col(AmenityCycle.amenity_id) == amenity_id)
                .where(col(AmenityCycle.state).in_(OPEN_CYCLE_STATES))
                .with_for_update().execution_options(populate_existing=True)
            )
        ).first()

    async def tap(
        self, *, site_id: str, reader_id: str, id_tag: str, amenity_id: str | None
    ) -> TapAnswer:
        """A badge at a machine's reader: start a cycle, or say why not. A second tap of the
        same household on its open cycle starts nothing and is answered with that cycle."""
        async with self.flow.unit() as unit:
            amenity = await self._amenity_for_tap(unit.db, site_id, reader_id, amenity_id)
        async with self._lock(amenity.id):
            answer, cycle_id = await self._tap(amenity, id_tag)
            if cycle_id is None:
                return answer
            if await self._switch_on(amenity, cycle_id):
                return answer
            return TapAnswer("refused", amenity.id, "relay-failed",
                             tap_message("relay-failed", kind=amenity.kind,
                                         amenity_id=amenity.id))

    async def _tap(self, amenity: Amenity, id_tag: str) -> tuple[TapAnswer, int | None]:
        settings = CycleSettings.of(amenity.cycle)

        def answer(decision: str, reason: str) -> TapAnswer:
            return TapAnswer(decision, amenity.id, reason, tap_message(
                reason, kind=amenity.kind, amenity_id=amenity.id,
                abandon_s=settings.abandon_after_s))

        async with self.flow.unit() as unit:
            db, now = unit.db, unit.now
            status = await self._status(unit, amenity)
            device = await self._device_ref(db, amenity)
            open_row = await self._open_cycle(db, amenity.id)
            if open_row is not None:
                use = await self.flow.lock(db, open_row.use_id) if open_row.use_id else None
                found = await device_badge(db, device, id_tag)
                if use is not None and found is not None and (
                    found.badge.account_id == use.account_id
                ):
                    return answer("accepted", "already-open"), None
                log.info("laundry.tap_in_use", amenity_id=amenity.id, cycle_id=open_row.id)
                return answer("refused", "in-use"), None
            if status.fault is not None:
                return answer("refused", "out-of-order"), None
            payer = await self.flow.authorize(db, device, id_tag, now)
            tariff = await self._tariff_of(db, amenity.site_id, amenity.tariff_id) or {}
            if not payer.decision.accepted:
                return TapAnswer("refused", amenity.id, payer.decision.reason,
                                 refusal_message(payer.decision,
                                                 str(tariff.get("name") or amenity.tariff_id))
                                 ), None
            row = AmenityCycle(amenity_id=amenity.id, site_id=amenity.site_id,
                               state=CycleState.AUTHORISED.value, tapped_at=now)
            db.add(row)
            await db.flush()
            assert row.id is not None
            site = await site_info(db, amenity.site_id)
            use = await self.flow.open(unit, device, str(row.id), tariff=tariff,
                                       currency=str(tariff.get("currency") or site.currency))
            row.use_id = use.id
            await self.flow.bind_badge(unit, use, device, id_tag)
            if use.auth_status != AuthStatus.ACCEPTED.value:
                # The wallet refused the hold after all (a race with another use): nothing runs.
                _store(row, stopped(cycle_of(row), now, EndReason.ABANDONED))
                row.released = True
                await self.flow.settle(unit, use)
                return TapAnswer("refused", amenity.id, "no-credit", refusal_message(
                    payer.decision, amenity.tariff_id)), None
            status.since = now
            log.info("laundry.tapped", amenity_id=amenity.id, cycle_id=row.id, use_id=use.id,
                     account_id=use.account_id)
            return answer("accepted", "accepted"), row.id

    async def _switch_on(self, amenity: Amenity, cycle_id: int) -> bool:
        """Relay on (with the dead-man timer) and the energy register at the tap; on failure
        the machine is out of order and the cycle is released (nothing billed)."""
        settings = CycleSettings.of(amenity.cycle)
        devices = self.devices(amenity)
        error: str | None = None
        detail = ""
        energy: int | None = None
        try:
            if not await devices.relay.switch(True, auto_off_s=dead_man_s(settings)):
                error, detail = "relay_stuck_off", "switched on, reads back off"
            elif devices.meter is not None:
                energy = (await devices.meter.measure()).energy_wh
        except DeviceUnreachable as unreachable:
            error, detail = "relay_unreachable", unreachable.reason
        async with self.flow.unit() as unit:
            row = await unit.db.get(AmenityCycle, cycle_id, with_for_update=True,
                                    populate_existing=True)
            assert row is not None
            if error is None:
                row.tap_energy_wh = energy
                if devices.meter is None:
                    # A timed machine: it runs from the tap.
                    cycle = cycle_of(row)
                    _store(row, Cycle(CycleState.RUNNING, cycle.tapped_at,
                                      started_at=cycle.tapped_at))
                    await self._grow(unit, amenity, row, unit.now, 0)
                await self._clear_fault(unit, amenity, relay_on=True)
                return True
            await self._fault(unit, amenity, error, detail)
            await self._end(unit, amenity, row, stopped(cycle_of(row), unit.now,
                                                        EndReason.RELAY_FAULT))
        await self._switch_off(amenity)
        return False

    # -- readings -----------------------------------------------------------------------------

    async def _read(self, devices: MachineDevices, settings: CycleSettings) -> _Reading:
        """One reading of the machine, renewing the relay's dead-man timer on the way (every
        third of its time: often enough to survive two lost renewals, rarely enough to keep the
        device's traffic low). A relay that reads back off while the cycle runs is switched on
        again at the next renewal."""
        relay_on: bool | None = None
        relay_error = ""
        try:
            now = self.clock()
            renewed = self._renewed.get(devices.relay.address)
            if renewed is None or now - renewed >= timedelta(seconds=dead_man_s(settings) / 3):
                relay_on = await devices.relay.switch(True, auto_off_s=dead_man_s(settings))
                self._renewed[devices.relay.address] = now
            else:
                relay_on = await devices.relay.is_on()
        except DeviceUnreachable as unreachable:
            relay_error = unreachable.reason
        measurement = None
        error = None
        if devices.meter is not None:
            try:
                measurement = await devices.meter.measure()
            except DeviceUnreachable as unreachable:
                error = unreachable.reason
        at = self.clock()
        if relay_on is False:
            error = "relay reads back off while the cycle runs"
        elif relay_on is None:
            error = f"relay unreachable: {relay_error}"
        return _Reading(at, measurement, error)

    async def poll(self, cycle_id: int) -> None:
        """One step of an open cycle: read, advance, bill; end it when it is over."""
        async with self.flow.unit() as unit:
            row = await unit.db.get(AmenityCycle, cycle_id)
            if row is None or row.state not in OPEN_CYCLE_STATES:
                return
            amenity = await unit.db.get(Amenity, row.amenity_id)
        assert amenity is not None
        async with self._lock(amenity.id):
            settings = CycleSettings.of(amenity.cycle)
            devices = self.devices(amenity)
            reading = await self._read(devices, settings)
            ended = False
            async with self.flow.unit() as unit:
                row = await unit.db.get(AmenityCycle, cycle_id, with_for_update=True,
                                        populate_existing=True)
                if row is None or row.state not in OPEN_CYCLE_STATES:
                    return
                row.polled_at = unit.now
                before = cycle_of(row)
                cycle = before
                if reading.measurement is not None:
                    cycle = on_power(cycle, settings, reading.at, reading.measurement.power_w)
                    row.last_power_w = int(reading.measurement.power_w)
                    row.last_energy_wh = reading.measurement.energy_wh
                    if row.tap_energy_wh is None:
                        row.tap_energy_wh = reading.measurement.energy_wh
                else:
                    cycle = on_time(cycle, settings, unit.now)
                if reading.error is not None:
                    log.warning("laundry.reading_failed", amenity_id=amenity.id,
                                cycle_id=row.id, error=reading.error)
                if cycle.state is CycleState.RUNNING and before.state is CycleState.AUTHORISED:
                    log.info("laundry.started", amenity_id=amenity.id, cycle_id=row.id)
                _store(row, cycle)
                if reading.measurement is not None:
                    await self._grow(unit, amenity, row, reading.at,
                                     reading.measurement.energy_wh)
                elif devices.meter is None:
                    await self._grow(unit, amenity, row, unit.now, 0)  # a timed machine
                if not cycle.open:
                    if cycle.end_reason is EndReason.READINGS_LOST:
                        await self._fault(unit, amenity, "readings_lost", reading.error or "")
                    await self._end(unit, amenity, row, cycle)
                    ended = True
            if ended:
                await self._switch_off(amenity)

    async def _grow(
        self, unit: Unit, amenity: Amenity, row: AmenityCycle, at: datetime, register_wh: int
    ) -> None:
        """A reading of a running cycle as a usage point, rated by the flow (which raises the
        hold, or asks for a stop when credit runs out). The first point is the power start,
        with the register as it was at the tap: energy counts from the tap, time from the
        start."""
        if row.use_id is None or row.started_at is None:
            return
        use = await self.flow.lock(unit.db, row.use_id)
        if use is None:
            return
        source = f"cycle:{row.id}"
        if use.started_at is None:
            use.started_at = row.started_at
            start = row.tap_energy_wh if row.tap_energy_wh is not None else register_wh
            point = NewPoint(f"{source}:start", 0, "start", row.started_at, None, unit.now,
                             register_wh=start)
        else:
            row.polls += 1
            point = NewPoint(source, row.polls, "meter", at, None, unit.now,
                             register_wh=register_wh)
        await self.flow.add_points(unit, use, [point])
        if row.state in OPEN_CYCLE_STATES:
            await self.flow.progress(unit, use, cause=f"{amenity.id}:{row.id}:{row.polls}",
                                     running=True)

    async def _end(self, unit: Unit, amenity: Amenity, row: AmenityCycle, cycle: Cycle) -> None:
        """Store the ended cycle and settle its use once (nothing for a cycle that never
        started); the household is told its laundry is done."""
        _store(row, cycle)
        status = await self._status(unit, amenity)
        status.since = cycle.ended_at or unit.now
        use = await self.flow.lock(unit.db, row.use_id) if row.use_id else None
        log.info("laundry.ended", amenity_id=amenity.id, cycle_id=row.id,
                 state=cycle.state.value, reason=cycle.end_reason)
        if use is None or use.status == "completed":
            return
        if cycle.state is CycleState.DONE:
            use.ended_at = cycle.ended_at
        use.stop_reason = cycle.end_reason.value if cycle.end_reason else None
        await self.flow.settle(unit, use, trailing_readings=True)
        if cycle.state is CycleState.DONE and use.account_id is not None:
            await raise_alert(
                unit.db, account_id=use.account_id, kind="laundry_done", at=unit.now,
                payload={"amenity": amenity.id, "kind": amenity.kind, "device_id": amenity.id,
                         "cost": str(use.gross if use.gross is not None and not use.free
                                     else Decimal("0.00")),
                         "currency": use.currency,
                         "running_min": cycle.running_s(unit.now) // 60,
                         "reason": use.stop_reason},
            )

    # -- the relay ----------------------------------------------------------------------------

    async def _switch_off(self, amenity: Amenity) -> None:
        """Relay off, read back; a relay still on is a fault (and asked again by the
        reconcile)."""
        devices = self.devices(amenity)
        try:
            on = await devices.relay.switch(False)
        except DeviceUnreachable as unreachable:
            async with self.flow.unit() as unit:
                await self._fault(unit, amenity, "relay_unreachable", unreachable.reason)
            return
        async with self.flow.unit() as unit:
            if on:
                await self._fault(unit, amenity, "relay_stuck_on", "switched off, reads on")
            else:
                await self._clear_fault(unit, amenity, relay_on=False)
                await self._mark_released(unit, amenity.id)

    async def _mark_released(self, unit: Unit, amenity_id: str) -> None:
        rows = (
            await unit.db.exec(
                select(AmenityCycle).where(col(AmenityCycle.amenity_id) == amenity_id)
                .where(col(AmenityCycle.released).is_(False))
                .where(col(AmenityCycle.state).not_in(OPEN_CYCLE_STATES))
            )
        ).all()
        for row in rows:
            row.released = True

    async def _fault(self, unit: Unit, amenity: Amenity, fault: str, detail: str) -> None:
        status = await self._status(unit, amenity)
        if status.fault == fault:
            return
        status.fault = fault[:24]
        status.fault_detail = detail[:200]
        status.fault_since = unit.now
        status.since = unit.now
        log.warning("laundry.fault", amenity_id=amenity.id, fault=fault, detail=detail)
        await raise_alert(
            unit.db, account_id=None, site_id=amenity.site_id, kind="device_fault",
            audience="staff", at=unit.now,
            payload={"device_id": amenity.id, "fault": fault, "detail": detail,
                     "site_id": amenity.site_id},
        )

    async def _clear_fault(self, unit: Unit, amenity: Amenity, *, relay_on: bool) -> None:
        status = await self._status(unit, amenity)
        status.relay_on = relay_on
        status.checked_at = unit.now
        if status.fault is None or (status.fault == "readings_lost" and relay_on):
            return
        log.info("laundry.fault_cleared", amenity_id=amenity.id, fault=status.fault)
        await raise_alert(
            unit.db, account_id=None, site_id=amenity.site_id, kind="device_fault_cleared",
            audience="staff", at=unit.now,
            payload={"device_id": amenity.id, "fault": status.fault,
                     "site_id": amenity.site_id},
        )
        status.fault = None
        status.fault_detail = None
        status.fault_since = None
        status.since = unit.now

    async def reconcile(self, amenity_id: str) -> None:
        """A machine without an open cycle must be off: switch it off if it reads on, and
        clear its fault once it answers as wanted."""
        async with self.flow.unit() as unit:
            amenity = await unit.db.get(Amenity, amenity_id)
            if amenity is None:
                return
            open_row = await self._open_cycle(unit.db, amenity_id)
        if open_row is not None:
            return
        async with self._lock(amenity_id):
            devices = self.devices(amenity)
            try:
                on = await devices.relay.is_on()
            except DeviceUnreachable as unreachable:
                async with self.flow.unit() as unit:
                    await self._fault(unit, amenity, "relay_unreachable", unreachable.reason)
                return
            if on:
                await self._switch_off(amenity)
                return
            async with self.flow.unit() as unit:
                await self._clear_fault(unit, amenity, relay_on=False)
                await self._mark_released(unit, amenity_id)

    # -- the flow's Device --------------------------------------------------------------------

    async def stop(self, use: UseRef) -> bool:
        """Credit ran out (or staff): the cycle ends at its last reading, the relay goes off."""
        cycle_id = int(use.use_ref)
        async with self.flow.unit() as unit:
            row = await unit.db.get(AmenityCycle, cycle_id)
            amenity = await unit.db.get(Amenity, row.amenity_id) if row else None
        if row is None or amenity is None:
            return False
        async with self._lock(amenity.id):
            async with self.flow.unit() as unit:
                row = await unit.db.get(AmenityCycle, cycle_id, with_for_update=True,
                                        populate_existing=True)
                if row is None:
                    return False
                if row.state in OPEN_CYCLE_STATES:
                    await self._end(unit, amenity, row, stopped(cycle_of(row), unit.now))
            await self._switch_off(amenity)
        return True

    async def show_cost(self, use: UseRef, cost: CostShown) -> None:
        """Machines have no display: the running cost is on the use (the amenities list shows
        it) and the final one goes out with the "laundry done" message."""

    # -- the loop -----------------------------------------------------------------------------

    async def due_cycles(self, now: datetime) -> list[int]:
        """Open cycles whose next reading is due (by their machine's poll_s)."""
        async with self.flow.unit() as unit:
            rows = (
                await unit.db.exec(
                    select(AmenityCycle, Amenity)
                    .join(Amenity, col(Amenity.id) == AmenityCycle.amenity_id)
                    .where(col(AmenityCycle.state).in_(OPEN_CYCLE_STATES))
                )
            ).all()
        due = []
        for row, amenity in rows:
            poll = timedelta(seconds=CycleSettings.of(amenity.cycle).poll_s)
            if row.polled_at is None or now - row.polled_at >= poll:
                assert row.id is not None
                due.append(row.id)
        return due

    async def machines_to_reconcile(self) -> list[str]:
        """Machines without an open cycle whose relay is faulty or was not yet seen off."""
        async with self.flow.unit() as unit:
            busy = select(AmenityCycle.amenity_id).where(
                col(AmenityCycle.state).in_(OPEN_CYCLE_STATES))
            ids = (
                await unit.db.exec(
                    select(Amenity.id).where(col(Amenity.id).not_in(busy))
                )
            ).all()
        return list(ids)

    async def run(self) -> None:
        """Until cancelled: due readings every tick, the relays of idle machines every
        `reconcile_s` (and at start, which is how a restart resumes)."""
        last_reconcile: datetime | None = None
        while True:
            try:
                now = self.clock()
                await asyncio.gather(*(self.poll(c) for c in await self.due_cycles(now)))
                if last_reconcile is None or (
                    now - last_reconcile >= timedelta(seconds=self.options.reconcile_s)
                ):
                    last_reconcile = now
                    for amenity_id in await self.machines_to_reconcile():
                        await self.reconcile(amenity_id)
            except Exception:
                log.warning("laundry.loop_failed", exc_info=True)
            await asyncio.sleep(self.options.tick_s)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.flow.drain()
