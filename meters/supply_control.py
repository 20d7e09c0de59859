"""Prepaid supply control: a flat's disconnect relay follows its account's credit (devices.md).

When the account's available credit is used up and no friendly-credit window applies (the
wallet's `CreditDecision.cut_supply`: nights, weekends, public holidays, credit days and the
account's spans keep the power on; mode `free` never cuts, `blocked` always does), the supply is
cut, but only after the household was warned: every low-balance threshold of its policy has been
crossed (those alerts went out with the movements that crossed them) and a "supply will be cut"
warning went out at least `warning_lead_s` before. As soon as a start would be allowed again (a
top-up, a voucher, emergency credit) or a friendly window opens, the supply is switched back on.

Every switch is read back and logged (`supply_switch`); a relay that does not answer or does not
read back what was wanted is a fault of the meter, alerted to staff, and asked again next time.
The decision itself is a pure function (`wanted_supply`), tested without I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.drivers.capabilities import DeviceUnreachable, Relay
from meters.models import Meter, MeterState, SupplySwitch
from wallet.alert_outbox import raise_alert
from wallet.credit import CreditDecision, Reason
from wallet.service import credit_decision, get_policy, note_supply, wallet_view

log = structlog.get_logger("meters.supply")

Clock = Callable[[], datetime]
RelayOf = Callable[[Mapping[str, Any]], Relay]


@dataclass(frozen=True, slots=True)
class SupplyOptions:
    # The "supply will be cut" warning goes out at least this long before the cut.
    warning_lead_s: int = 3600
    # How often every meter's supply is checked (a top-up is seen within this).
    check_s: float = 15.0


@dataclass(frozen=True, slots=True)
class SupplyVerdict:
    """What to do with one flat's supply now."""

    on: bool  # the wanted relay state
    warn: bool  # raise the "supply will be cut" warning now
    reason: str


def wanted_supply(
    decision: CreditDecision,
    *,
    supply_on: bool,
    thresholds_crossed: bool,
    warned_at: datetime | None,
    now: datetime,
    lead: timedelta,
) -> SupplyVerdict:
    """The pure rule: cut only when the wallet says so, the warnings went out and the lead time
    passed; restore as soon as the wallet no longer says so."""
    if not decision.cut_supply:
        return SupplyVerdict(True, False, decision.reason.value)
    if not supply_on:
        return SupplyVerdict(False, False, decision.reason.value)
    if decision.reason is Reason.BLOCKED:
        # Operating mode `blocked` is the owner's decision, not a matter of credit: no wait.
        return SupplyVerdict(False, False, decision.reason.value)
    if warned_at is None:
        return SupplyVerdict(True, True, "warning")
    if not thresholds_crossed or now - warned_at < lead:
        return SupplyVerdict(True, False, "warned")
    return SupplyVerdict(False, False, decision.reason.value)


class SupplyControl:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        relay_of: RelayOf,
        *,
        clock: Clock,
        options: SupplyOptions | None = None,
    ) -> None:
        self._sessions = sessions
        self._relay_of = relay_of
        self.clock = clock
        self.options = options or SupplyOptions()

    async def _thresholds_crossed(self, db: AsyncSession, account_id: str) -> bool:
        """Every low-balance threshold of the policy lies above the balance: each alert went
        out with the movement that crossed it."""
        policy = await get_policy(db, account_id)
        if not policy.low_balance_thresholds:
            return True
        balance = (await wallet_view(db, account_id, self.clock())).balance
        return all(balance < threshold for threshold in policy.low_balance_thresholds)

    async def control_meter(self, meter_id: str) -> SupplyVerdict | None:
        """Decide and switch one meter's supply; None if it has no disconnect relay."""
        now = self.clock()
        async with self._sessions() as db:
            meter = await db.get(Meter, meter_id)
            if meter is None or not meter.disconnect:
                return None
            state = await self._state(db, meter, now)
            supply_on = state.supply != "off"
            decision = await credit_decision(db, meter.account_id, now, supply_on=supply_on)
            verdict = wanted_supply(
                decision, supply_on=supply_on,
                thresholds_crossed=await self._thresholds_crossed(db, meter.account_id),
                warned_at=state.warned_at, now=now,
                lead=timedelta(seconds=self.options.warning_lead_s),
            )
            if verdict.warn:
                state.warned_at = now
                balance = (await wallet_view(db, meter.account_id, now)).balance
                await raise_alert(
                    db, account_id=meter.account_id, kind="supply_warning", at=now,
                    payload={"meter_id": meter.id, "balance": str(balance),
                             "threshold": "0.00", "cut_after_min":
                             self.options.warning_lead_s // 60},
                )
                log.info("supply.warned", meter_id=meter.id, account_id=meter.account_id)
            elif verdict.on and not decision.cut_supply:
                state.warned_at = None  # credit is back: a later shortfall warns afresh
            await db.commit()
        if verdict.on == supply_on and state.supply != "fault":
            return verdict
        await self._switch(meter, verdict)
        return verdict

    async def _state(self, db: AsyncSession, meter: Meter, now: datetime) -> MeterState:
        state = await db.get(MeterState, meter.id)
        if state is None:
            state = MeterState(meter_id=meter.id, supply="on", supply_changed_at=now)
            db.add(state)
            await db.flush()
        return state

    async def _switch(self, meter: Meter, verdict: SupplyVerdict) -> None:
        """Switch the relay, read it back, log it; a failure is a fault and a staff alert."""
        assert meter.disconnect is not None
        now = self.clock()
        relay = self._relay_of(meter.disconnect)
        error: str | None = None
        try:
            read_back = await relay.switch(verdict.on)
            if read_back != verdict.on:
                error = f"switched {'on' if verdict.on else 'off'}, reads back " \
                        f"{'on' if read_back else 'off'}"
        except DeviceUnreachable as unreachable:
            error = f"unreachable: {unreachable.reason}"
        async with self._sessions() as db:
            state = await self._state(db, meter, now)
            db.add(SupplySwitch(meter_id=meter.id, at=now, on=verdict.on, reason=verdict.reason,
                                ok=error is None, detail=error))
            if error is None:
                state.supply = "on" if verdict.on else "off"
                state.supply_changed_at = now
                await note_supply(db, meter.account_id, cut=not verdict.on, at=now)
                log.info("supply.switched", meter_id=meter.id, account_id=meter.account_id,
                         on=verdict.on, reason=verdict.reason)
            else:
                first = state.supply != "fault"
                state.supply = "fault"
                state.supply_changed_at = now
                log.warning("supply.relay_failed", meter_id=meter.id, wanted=verdict.on,
                            error=error)
                if first:
                    await raise_alert(
                        db, account_id=None, site_id=meter.site_id, kind="device_fault",
                        audience="staff", at=now,
                        payload={"device_id": meter.id, "fault": "supply_relay_failed",
                                 "detail": error, "site_id": meter.site_id},
                    )
            await db.commit()

    async def control_once(self) -> dict[str, SupplyVerdict]:
        """Every meter with a disconnect relay, once."""
        async with self._sessions() as db:
            meters = (await db.exec(select(Meter).order_by(col(Meter.id)))).all()
            # JSON columns keep a missing block as JSON null: filter here, not in SQL.
            ids = [meter.id for meter in meters if meter.disconnect]
        verdicts = {}
        for meter_id in ids:
            verdict = await self.control_meter(meter_id)
            if verdict is not None:
                verdicts[meter_id] = verdict
        return verdicts

    async def run(self) -> None:
        while True:
            try:
                await self.control_once()
            except Exception:
                log.warning("supply.control_failed", exc_info=True)
            await asyncio.sleep(self.options.check_s)
