"""The one money flow of DESIGN.md, for every device that a badge pays at.

badge -> rfid decides who pays -> wallet opens a hold -> the device's readings grow the usage ->
pricing rates the usage so far -> wallet raises the hold -> when the wallet refuses and no
friendly window applies, the device is asked to stop -> at the end pricing rates the final
usage, the wallet settles the hold and writes the ledger entry.

A device adapter (OCPP, relays, meters) works in `Unit`s: one database transaction each, in
which it stores its own rows and calls the flow (`open`, `bind_badge`, `add_points`,
`progress`, `settle`). The use row is locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite
serialises writers), the bill is recomputed from all stored points with `pricing.rate` (so the
live cost, the final bill and the debit are the same function of the same usage), the wallet
moves, and everything commits together. Requests to devices (stop, show cost) go out after the
commit; they move no money, and a stop that did not arrive is asked again.

Money keys are derived from their cause: the hold from the device and its use
(`{kind}:{device}:{use_ref}:hold`), each raise from the message that grew the usage
(`{kind}:{cause}:raise`), the settlement from the device and its use
(`{kind}:{device}:{use_ref}:settle`): whichever way a use ends (the device's stop, a repeated
stop, a restart, a timeout, staff), it is settled once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.device import CostShown, Device, DeviceRef, ExtraPoints, UseRef
from billing.live_usage import UsageFigures
from billing.models import PaidUse, UsagePoint, UseStatus
from billing.payer import (
    CloneCheck,
    Payer,
    account_language,
    badge_standing,
    no_tariff_decision,
    who_pays,
)
from billing.rating import UseRatings, use_ref_of
from billing.usage import BuiltUsage, Point
from pricing import Bill, bill_to_json
from rfid.authorisation import AuthStatus
from wallet.errors import CreditRefused
from wallet.ledger import dialect_insert
from wallet.models import HoldRecord
from wallet.service import (
    adjust_hold,
    credit_decision,
    debit,
    open_hold,
    raise_alert,
    release_hold,
    settle_hold,
)

log = structlog.get_logger("billing")

Clock = Callable[[], datetime]
ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class FlowOptions:
    # Reserved when a use starts (cut to what the wallet has); raised as the cost grows.
    initial_hold: Decimal = Decimal("5.00")
    # A stop the device did not act on is asked again after this long.
    stop_retry_s: float = 60.0


@dataclass(frozen=True, slots=True)
class NewPoint:
    """A usage point as a device adapter reports it (stored once per source and index)."""

    source: str
    idx: int
    kind: str  # start | meter | state | stop
    at: datetime
    device_at: datetime | None
    received_at: datetime
    implausible: bool = False
    register_wh: int | None = None
    state: str | None = None
    seq_no: int | None = None


@dataclass(slots=True)
class Unit:
    """One database transaction of the flow, and what to ask devices once it committed."""

    db: AsyncSession
    now: datetime
    # Points stored by this unit, per use (what a running rating grows by).
    new_points: dict[int, list[Point]] = field(default_factory=dict)
    stops: list[UseRef] = field(default_factory=list)
    costs: list[tuple[UseRef, CostShown]] = field(default_factory=list)


def hold_key(kind: str, device_id: str, use_ref: str) -> str:
    return f"{kind}:{device_id}:{use_ref}:hold"


def settle_key(kind: str, device_id: str, use_ref: str) -> str:
    return f"{kind}:{device_id}:{use_ref}:settle"


def raise_key(kind: str, cause: str) -> str:
    return f"{kind}:{cause}:raise"


def flag(use: PaidUse, *flags: str) -> None:
    new = [f for f in flags if f not in use.flags]
    if new:
        use.flags = [*use.flags, *new]


def shown_gross(use: PaidUse, gross: Decimal) -> Decimal:
    """What the resident sees and pays: nothing for a free use."""
    return ZERO if use.free else gross


class PaidUseFlow:
    """One per node. Device adapters register under their kind (the ledger's service name)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        options: FlowOptions | None = None,
        clones: CloneCheck | None = None,
    ) -> None:
        self._sessions = sessions
        self.clock = clock
        self.options = options or FlowOptions()
        self.clones = clones or CloneCheck()
        self._devices: dict[str, Device] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ratings = UseRatings()

    def register(
        self, kind: str, device: Device | None, extra_points: ExtraPoints | None = None
    ) -> None:
        if device is not None:
            self._devices[kind] = device
        if extra_points is not None:
            self.ratings.extra_points[kind] = extra_points

    @property
    def devices(self) -> Mapping[str, Device]:
        return self._devices

    # -- units of work ------------------------------------------------------------------------

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        """A transaction: committed when the block ends without error, then the device
        requests it collected are sent."""
        async with self._sessions() as db:
            work = Unit(db, self.clock())
            yield work
            await db.commit()
        self.dispatch(work)

    # -- who pays -----------------------------------------------------------------------------

    async def authorize(
        self, db: AsyncSession, device: DeviceRef, id_tag: str, now: datetime
    ) -> Payer:
        """May this badge start a use at this device now (badge, account, limit, credit)."""
        payer = await who_pays(db, device, id_tag, now)
        if payer.badge is not None:
            await self.clones.observe(db, device, payer.badge, now)
        if device.tariff_id is None:
            log.warning("billing.no_tariff", device_id=device.device_id, kind=device.kind)
            return replace(payer, decision=no_tariff_decision(device, payer))
        return payer

    # -- a use --------------------------------------------------------------------------------

    async def lock(self, db: AsyncSession, use_id: int) -> PaidUse | None:
        return (
            await db.exec(
                select(PaidUse)
                .where(col(PaidUse.id) == use_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).first()

    async def find(
        self, db: AsyncSession, kind: str, device_id: str, use_ref: str
    ) -> PaidUse | None:
        return (
            await db.exec(
                select(PaidUse)
                .where(col(PaidUse.kind) == kind)
                .where(col(PaidUse.device_id) == device_id)
                .where(col(PaidUse.use_ref) == use_ref)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).first()

    async def open(
        self, unit: Unit, device: DeviceRef, use_ref: str, *, tariff: dict[str, Any],
        currency: str,
    ) -> PaidUse:
        """The use of `device` called `use_ref`, created once however often it is opened."""
        await unit.db.exec(
            dialect_insert(unit.db, PaidUse).values(
                kind=device.kind, device_id=device.device_id, use_ref=use_ref[:64],
                site_id=device.site_id, tariff_id=device.tariff_id or "", tariff=tariff,
                currency=currency, max_power_w=device.max_power_w, status=UseStatus.ACTIVE,
                energy_wh=0, duration_s=0, idle_s=0, free=False, lines=[], point_count=0,
                stop_requests=0, flags=[],
            ).on_conflict_do_nothing()
        )
        use = await self.find(unit.db, device.kind, device.device_id, use_ref[:64])
        assert use is not None
        return use

    async def bind_badge(
        self, unit: Unit, use: PaidUse, device: DeviceRef, id_tag: str
    ) -> None:
        """Whose use it is, and the hold if the badge may pay (once per use)."""
        if use.id_tag is not None:
            return
        db, now = unit.db, unit.now
        use.id_tag = id_tag[:64]
        if not use.tariff_id:
            # No price was ever chosen for this device: nobody is held or billed for it.
            use.auth_status = AuthStatus.INVALID.value
            flag(use, "no_tariff")
            log.warning("billing.no_tariff", device_id=use.device_id, use_id=use.id,
                        kind=use.kind)
            return
        payer = await badge_standing(db, device, id_tag, now)
        badge = payer.badge
        if badge is None:
            use.auth_status = AuthStatus.INVALID.value
            flag(use, "unknown_badge")
            log.warning("billing.unknown_badge", device_id=use.device_id, use_id=use.id,
                        id_tag=id_tag)
            return
        use.badge_uid = badge.uid
        use.account_id = badge.account_id
        await self.clones.observe(db, device, badge, now)
        standing = payer.decision
        if not standing.accepted:
            # Billed all the same (a late offline use of a badge blocked meanwhile).
            use.auth_status = standing.status.value
            flag(use, f"badge_{standing.reason.replace('badge-', '')}")
            return
        try:
            hold = await open_hold(
                db, account_id=badge.account_id, amount=self.options.initial_hold,
                key=hold_key(use.kind, use.device_id, use.use_ref), service=use.kind,
                reference=f"{use.device_id}/{use.use_ref}", at=now, allow_partial=True,
            )
        except CreditRefused as refused:
            use.auth_status = (
                AuthStatus.BLOCKED.value if refused.reason == "blocked"
                else AuthStatus.NO_CREDIT.value
            )
            flag(use, "credit_refused")
            log.info("billing.start_refused", device_id=use.device_id, use_id=use.id,
                     account_id=badge.account_id, reason=refused.reason)
            return
        use.hold_id = hold.id
        use.free = hold.free
        use.auth_status = AuthStatus.ACCEPTED.value
        if hold.free:
            flag(use, "free")

    async def add_points(self, unit: Unit, use: PaidUse, points: Iterable[NewPoint]) -> int:
        """Store the points not stored yet; how many were new."""
        inserted = 0
        for point in points:
            result = await unit.db.exec(
                dialect_insert(unit.db, UsagePoint).values(
                    use_id=use.id, source=point.source[:200], idx=point.idx, kind=point.kind,
                    at=point.at, device_at=point.device_at, received_at=point.received_at,
                    implausible=point.implausible, register_wh=point.register_wh,
                    state=point.state[:24] if point.state else None, seq_no=point.seq_no,
                ).on_conflict_do_nothing(index_elements=["use_id", "source", "idx"])
            )
            if (result.rowcount or 0) > 0:
                inserted += 1
                assert use.id is not None
                unit.new_points.setdefault(use.id, []).append(
                    Point(point.at, point.register_wh, point.state[:24] if point.state else None)
                )
            if point.implausible:
                flag(use, "implausible_timestamp")
        use.point_count += inserted
        return inserted

    # -- usage and bill -----------------------------------------------------------------------

    async def usage(self, db: AsyncSession, use: PaidUse) -> BuiltUsage | None:
        return await self.ratings.usage(db, use)

    async def rate(self, unit: Unit, use: PaidUse) -> tuple[UsageFigures, Bill] | None:
        """The bill of the usage so far, stored on the use with its figures."""
        assert use.id is not None
        if not use.tariff_id:
            return None  # a device without a tariff: nothing to rate, nothing is billed
        rated = await self.ratings.rate(unit.db, use, unit.new_points.get(use.id, []))
        if rated is None:
            return None
        figures, _ = rated
        use.energy_wh = figures.energy_wh
        use.duration_s = figures.duration_s
        use.idle_s = figures.idle_s
        use.last_register_wh = figures.last_register_wh
        if figures.register_reset:
            flag(use, "register_reset")
        if figures.implausible_wh > 0 and "held_for_review" not in use.flags:
            await self._hold_for_review(unit, use, figures)
        return rated

    async def _hold_for_review(self, unit: Unit, use: PaidUse, figures: UsageFigures) -> None:
        """Readings claim more energy than the device can deliver: only the plausible part is
        billed, the use is ended at once, and staff are told (the owner reviews it)."""
        flag(use, "implausible_energy", "held_for_review")
        log.warning("billing.held_for_review", use_id=use.id, device_id=use.device_id,
                    implausible_wh=figures.implausible_wh, max_power_w=use.max_power_w)
        if use.account_id is not None:
            await raise_alert(
                unit.db, account_id=use.account_id, kind="usage_held_for_review",
                at=unit.now, audience="staff",
                payload={"use_id": use.id, "device_id": use.device_id,
                         "implausible_wh": figures.implausible_wh,
                         "max_power_w": use.max_power_w, "currency": use.currency},
            )

    async def progress(
        self, unit: Unit, use: PaidUse, *, cause: str | None, running: bool, show: bool = True
    ) -> CostShown | None:
        """Rate the usage so far, raise the hold to it (the cause names the message that grew
        it), ask the device to stop when credit ran out, and show the new cost.

        Returns the running cost to show when it changed. With `show`, it goes to the device
        after the commit (`Device.show_cost`); without, the adapter delivers it itself, e.g. with
        its answer to the message that changed it, so the display never lags that message."""
        rated = await self.rate(unit, use)
        if rated is None:
            return None
        figures, bill = rated
        if "held_for_review" in use.flags and use.status == UseStatus.ACTIVE:
            # Nothing beyond the plausible part is billed: the use ends at its last reading.
            self.request_stop(unit, use, reason="held_for_review")
            use.ended_at = use.ended_at or figures.last.at
            use.stop_reason = use.stop_reason or "held_for_review"
            await self.settle(unit, use)
            return None
        # The first rating (the start) has nothing to show yet.
        changed = use.live_gross is not None and bill.gross != use.live_gross
        use.live_gross = bill.gross
        use.lines = bill_to_json(bill)["lines"]
        if use.hold_id is not None and cause is not None:
            await self._raise_hold(unit, use, bill.total, cause)
        retry = timedelta(seconds=self.options.stop_retry_s)
        if running and use.stop_requested_at is not None and (
            unit.now - use.stop_requested_at >= retry
        ):
            self.request_stop(unit, use, reason=None)
        if not running or not changed:
            return None
        last = figures.last
        cost = CostShown(
            shown_gross(use, bill.gross), use.currency, final=False, at=last.at,
            register_wh=use.last_register_wh, running=last.charging,
        )
        if show:
            unit.costs.append((use_ref_of(use), cost))
        return cost

    async def _raise_hold(self, unit: Unit, use: PaidUse, target: Decimal, cause: str) -> None:
        assert use.hold_id is not None
        db, now = unit.db, unit.now
        hold = await db.get(HoldRecord, use.hold_id, populate_existing=True)
        if hold is None or hold.status != "open" or target <= hold.amount:
            return
        key = raise_key(use.kind, cause)
        try:
            await adjust_hold(db, use.hold_id, target, key=key, at=now)
        except CreditRefused as refused:
            available = refused.details.get("available")
            if isinstance(available, Decimal) and available > 0:
                # Everything the wallet allows is now held: the usage stops here.
                await adjust_hold(db, use.hold_id, hold.amount + available,
                                  key=f"{key}-all", at=now)
            if use.stop_requested_at is None:
                flag(use, "credit_stop")
                self.request_stop(unit, use, reason=refused.reason)
                assert use.account_id is not None
                await raise_alert(
                    db, account_id=use.account_id, kind=f"{use.kind}_stopped", at=now,
                    payload={"use_id": use.id, "device_id": use.device_id,
                             "reason": refused.reason, "cost": str(target),
                             "currency": use.currency},
                )
            return
        if target > 0 and use.account_id is not None:
            decision = await credit_decision(db, use.account_id, now)
            if decision.available < 0 and decision.friendly is not None:
                flag(use, "friendly_credit")

    async def charge_so_far(self, unit: Unit, use: PaidUse, *, cause: str) -> Decimal:
        """A continuous use without a hold (a flat's supply): rate the usage so far and debit
        what it costs beyond what was debited before, keyed by the reading that grew it
        (`{kind}:{cause}:debit`). The debits add up to the bill of the usage so far, so a
        period's debits equal its price; the settlement debits the rest. Returns the gross
        debited now."""
        rated = await self.rate(unit, use)
        if rated is None or use.account_id is None or use.free:
            return ZERO
        bill = rated[1]
        use.live_gross = bill.gross
        use.lines = bill_to_json(bill)["lines"]
        return await self._debit_rest(unit, use, bill, key=f"{use.kind}:{cause}:debit")

    async def _debit_rest(self, unit: Unit, use: PaidUse, bill: Bill, *, key: str) -> Decimal:
        """Debit what `bill` costs beyond the use's charges so far (nothing if no more)."""
        assert use.account_id is not None
        net = bill.net - (use.charged_net or ZERO)
        gross = bill.gross - (use.charged_gross or ZERO)
        recovery_total = bill.recovery if bill.has_recovery else ZERO
        recovery = recovery_total - (use.charged_recovery or ZERO)
        if gross <= 0 and recovery <= 0:
            return ZERO
        energy = max(0, use.energy_wh - (use.charged_wh or 0))
        debited = await debit(
            unit.db, account_id=use.account_id, net=max(net, ZERO), vat=max(gross - net, ZERO),
            gross=max(gross, ZERO), service=use.kind, key=key,
            description=f"{use.kind} {use.device_id} {use.use_ref}", energy_wh=energy,
            recovery=recovery if recovery > 0 else (ZERO if bill.has_recovery else None),
            at=unit.now,
        )
        use.charged_net = (use.charged_net or ZERO) + max(net, ZERO)
        use.charged_gross = (use.charged_gross or ZERO) + max(gross, ZERO)
        use.charged_wh = max(use.energy_wh, use.charged_wh or 0)
        if bill.has_recovery:
            use.charged_recovery = (use.charged_recovery or ZERO) + max(recovery, ZERO)
        if debited.entry is not None:
            use.entry_id = debited.entry.id
        return max(gross, ZERO)

    def request_stop(self, unit: Unit, use: PaidUse, *, reason: str | None) -> None:
        use.stop_requested_at = unit.now
        use.stop_requests += 1
        unit.stops.append(use_ref_of(use))
        log.info("billing.stop_requested", use_id=use.id, device_id=use.device_id,
                 reason=reason, attempt=use.stop_requests)

    async def settle(self, unit: Unit, use: PaidUse, *, trailing_readings: bool = False) -> None:
        """The final bill, once: the hold settled (or the account debited) with the use's key.
        `trailing_readings`: readings after the end are how the device found the end (a
        machine's quiet wait), not late messages to flag."""
        db, now = unit.db, unit.now
        rated = await self.rate(unit, use)
        bill: Bill | None = rated[1] if rated is not None else None
        if bill is not None:
            use.net, use.vat, use.gross = bill.net, bill.vat, bill.gross
            use.lines = bill_to_json(bill)["lines"]
            use.live_gross = bill.gross
        key = settle_key(use.kind, use.device_id, use.use_ref)
        description = f"{use.kind} {use.device_id} #{use.use_ref}, {use.energy_wh} Wh"
        recovery = bill.recovery if bill is not None and bill.has_recovery else None
        if bill is not None and use.charged_gross is not None:
            # A continuous use: its readings were debited as they came; the rest now.
            if use.account_id is not None and not use.free:
                await self._debit_rest(unit, use, bill, key=key)
        elif bill is not None and use.hold_id is not None:
            settled = await settle_hold(
                db, use.hold_id, net=bill.net, vat=bill.vat, gross=bill.gross, service=use.kind,
                key=key, description=description, energy_wh=use.energy_wh, recovery=recovery,
                at=now,
            )
            use.entry_id = settled.entry.id if settled.entry else None
        elif bill is not None and use.account_id is not None:
            debited = await debit(
                db, account_id=use.account_id, net=bill.net, vat=bill.vat, gross=bill.gross,
                service=use.kind, key=key, description=description, energy_wh=use.energy_wh,
                recovery=recovery, at=now,
            )
            use.entry_id = debited.entry.id if debited.entry else None
        elif bill is None and use.hold_id is not None:
            # Nothing was used (a machine never started): the hold goes back untouched.
            hold = await db.get(HoldRecord, use.hold_id, populate_existing=True)
            if hold is not None and hold.status == "open":
                await release_hold(db, use.hold_id, key=key, at=now)
        use.status = UseStatus.COMPLETED
        use.billed_at = now
        if use.ended_at is not None and not trailing_readings:
            later = (
                await db.exec(
                    select(func.count()).select_from(UsagePoint)
                    .where(col(UsagePoint.use_id) == use.id)
                    .where(col(UsagePoint.at) > use.ended_at)
                )
            ).one()
            if later:
                flag(use, "meter_after_stop")
        log.info("billing.settled", use_id=use.id, kind=use.kind, device_id=use.device_id,
                 account_id=use.account_id, gross=str(use.gross), energy_wh=use.energy_wh,
                 flags=use.flags)
        if use.id is not None:
            self.ratings.forget(use.id)
        if bill is not None:
            last = rated[0].last if rated is not None else None
            unit.costs.append((use_ref_of(use), CostShown(
                shown_gross(use, bill.gross), use.currency, final=True,
                at=last.at if last is not None else now, register_wh=use.last_register_wh,
                running=False, language=await account_language(db, use.account_id),
            )))

    async def close(
        self, use_id: int, *, flag_as: str, staff: str | None = None
    ) -> bool:
        """Close an open use from its last reading and settle it; False if it was not open.
        For restarts, silence, missing messages and staff stops."""
        async with self.unit() as unit:
            use = await self.lock(unit.db, use_id)
            if use is None or use.status == UseStatus.COMPLETED:
                return False
            if use.ended_at is None:
                last = (
                    await unit.db.exec(
                        select(func.max(UsagePoint.at))
                        .where(col(UsagePoint.use_id) == use.id)
                        .where(col(UsagePoint.register_wh).is_not(None))
                    )
                ).one()
                use.ended_at = last or use.started_at or unit.now
                use.stop_reason = flag_as[:32]
            flag(use, flag_as)
            await self.settle(unit, use)
            if staff is not None:
                log.info("billing.staff_stop", use_id=use.id, staff=staff)
                unit.stops.append(use_ref_of(use))
        return True

    async def seq_numbers(self, db: AsyncSession, use: PaidUse) -> set[int]:
        """The device message numbers stored for a use (for devices that number them)."""
        found = (
            await db.exec(
                select(UsagePoint.seq_no)
                .where(col(UsagePoint.use_id) == use.id)
                .where(col(UsagePoint.seq_no).is_not(None))
                .distinct()
            )
        ).all()
        return {seq for seq in found if seq is not None}

    # -- device requests after commit ---------------------------------------------------------

    def dispatch(self, unit: Unit) -> None:
        for use, cost in unit.costs:
            device = self._devices.get(use.kind)
            if device is not None:
                self.run_device_request(device.show_cost(use, cost), f"{use.device_id}:cost")
        for use in unit.stops:
            device = self._devices.get(use.kind)
            if device is not None:
                self.run_device_request(self._stop(device, use), f"{use.device_id}:stop")

    async def _stop(self, device: Device, use: UseRef) -> None:
        accepted = await device.stop(use)
        log.info("billing.device_stop", device_id=use.device_id, use_ref=use.use_ref,
                 accepted=accepted)

    def run_device_request(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Send a request to a device in the background (after a commit); `drain` waits for
        it. Requests move no money, so a failure is logged, not raised."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Display and stop requests move no money; a stop not delivered is asked again.
            log.warning("billing.device_request_failed", task=task.get_name(),
                        error=repr(task.exception()))

    async def drain(self) -> None:
        """Wait for the device requests in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
