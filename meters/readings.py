"""Meter readings stored, judged and continued across meter exchanges.

`store_reading` is where every reading enters: it judges the reading against the meter's
standing (`meters.plausibility`), inserts it once per meter and instant, and moves the standing
on, all in the caller's transaction, so supply billing that runs in the same transaction commits
with the reading or not at all. What it returns, `StoredReading`, is all supply billing needs:
the billed register now and at the last billable reading before it.

Billed register: the register as read plus the offsets of the exchanges recorded before the
reading (`record_exchange`). An installer who swaps a meter records the old meter's final and the
new one's first register; the offset makes the billed register continue where the old one ended,
so the first billable reading of the new meter bills the rest of the old meter's count and the
new meter's since, in one interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN
from typing import Any, Final, Literal

import structlog
from sqlalchemy import column, func, table
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from column_types import dialect_insert
from meters.models import Meter, MeterExchange, MeterReading, MeterState
from meters.plausibility import (
    ABSURD_JUMP,
    COUNTER_BACKWARDS,
    MAX_REGISTER_WH,
    OUT_OF_RANGE,
    judge,
    max_power_w,
    ordered,
    register_step_wh,
)
from meters.profiles import BUILTIN, MeterProfile, ProfileError, profile_from_site_file
from meters.registers import MeterValues

log = structlog.get_logger("meters.readings")

#: A meter's reading period when the site file gives none (devices.md: `poll_s: 60`).
DEFAULT_POLL_S: Final = 60

Supply = Literal["on", "off", "fault"]
SUPPLY_STATES: Final[tuple[str, ...]] = ("on", "off", "fault")

# The largest magnitude an INTEGER column holds on PostgreSQL; a power register beyond it is
# garbage from the line (and would fail the whole transaction).
_INT32_MAX: Final = 2**31 - 1

# The site's custom profiles (csms.inventory.models.Site.meter_profiles). meters sits below
# csms and cannot import that model; this names the two columns it reads.
_SITE = table("site", column("id"), column("meter_profiles"))


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as stored, for supply billing.

    `energy_wh` is the billed register (exchange offsets included, whole Wh; None when the
    register held NaN or garbage). `billable` says whether it may be billed; when it is and
    `previous_billable` is not None, the consumption from `previous_billable` (time, billed
    register) to (`at`, `energy_wh`) is this interval's to bill. A billable reading without
    `previous_billable` is the meter's first: a baseline, nothing to bill. Storing the same
    instant again returns the same StoredReading."""

    meter_id: str
    account_id: str
    tariff_id: str
    site_id: str
    at: datetime
    energy_wh: int | None
    power_w: int | None
    billable: bool
    flags: tuple[str, ...]
    previous_billable: tuple[datetime, int] | None


class ExchangeError(ValueError):
    """A meter exchange that cannot be recorded; `problems` lists every one as
    `(field, message)`, fields named as `record_exchange` names its arguments."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.problems))


# ---- the meter's standing ---------------------------------------------------------------------


async def meter_state(db: AsyncSession, meter_id: str, *, lock: bool = True) -> MeterState:
    """The meter's standing, created (supply on, nothing read) on first use; locked for this
    transaction unless `lock=False` (row lock on PostgreSQL; SQLite serialises writers)."""
    query = select(MeterState).where(col(MeterState.meter_id) == meter_id)
    if lock:
        query = query.with_for_update()
    state = (await db.exec(query)).one_or_none()
    if state is not None:
        return state
    insert = dialect_insert(db.get_bind().dialect.name, MeterState).values(
        meter_id=meter_id, offset_wh=0, failures=0, flags=[], supply="on"
    ).on_conflict_do_nothing(index_elements=["meter_id"])
    await db.exec(insert)
    return (await db.exec(query)).one()


async def set_supply(db: AsyncSession, meter_id: str, supply: Supply, at: datetime) -> MeterState:
    """Record the supply relay's state as switched (or found faulty); `supply_changed_at` moves
    only when the state changes. For supply control."""
    if supply not in SUPPLY_STATES:
        raise ValueError(f"supply must be one of {', '.join(SUPPLY_STATES)}, not {supply!r}")
    state = await meter_state(db, meter_id)
    if state.supply != supply:
        state.supply = supply
        state.supply_changed_at = at
        db.add(state)
        await db.flush()
    return state


async def record_failure(
    db: AsyncSession, meter_id: str, reason: str, backed_off_until: datetime | None
) -> MeterState:
    """A poll that got no reading: counted (failed polls in a row) with its reason and until
    when the line's owner skips the meter. The next reading stored resets it."""
    state = await meter_state(db, meter_id)
    state.failures += 1
    state.last_failure = reason[:200]
    state.backed_off_until = backed_off_until
    db.add(state)
    await db.flush()
    return state


# ---- profiles -----------------------------------------------------------------------------------


async def site_profiles(db: AsyncSession, site_ids: Iterable[str]) -> dict[str, MeterProfile]:
    """The custom profiles of the sites named, by id (a site file's `meter_profiles`). The
    site file's validation admits only valid ones; one that no longer reads is left out (its
    meters are then skipped by the poller, with a log line)."""
    ids = sorted(set(site_ids))
    if not ids:
        return {}
    rows = (await db.exec(
        select(_SITE.c.id, _SITE.c.meter_profiles).where(_SITE.c.id.in_(ids))
    )).all()
    profiles: dict[str, MeterProfile] = {}
    for site_id, entries in rows:
        listed: list[Any] = entries if isinstance(entries, list) else []
        for index, entry in enumerate(listed):
            try:
                profile = profile_from_site_file(entry, f"meter_profiles[{index}]")
            except ProfileError as error:
                log.error("meter_profile_invalid", site=site_id, problems=list(error.problems))
                continue
            profiles[profile.id] = profile
    return profiles


async def profile_of(db: AsyncSession, meter: Meter) -> MeterProfile | None:
    if meter.profile in BUILTIN:
        return BUILTIN[meter.profile]
    return (await site_profiles(db, [meter.site_id])).get(meter.profile)


# ---- readings -----------------------------------------------------------------------------------


async def store_reading(
    db: AsyncSession,
    meter: Meter,
    at: datetime,
    values: MeterValues,
    *,
    profile: MeterProfile | None = None,
    received_at: datetime | None = None,
) -> StoredReading:
    """Judge and store one reading of `meter` taken at `at`, and move its standing on (last
    reading, last billable reading, open flags; failures cleared). Idempotent on (meter, at):
    storing an instant already stored changes nothing and returns the reading as stored.
    Flushes, never commits: the caller's transaction decides. `profile` spares a lookup of a
    custom profile; `received_at` defaults to `at`."""
    if at.tzinfo is None:
        raise ValueError(f"at: {at.isoformat()} carries no time zone")
    state = await meter_state(db, meter.id)
    existing = (await db.exec(
        select(MeterReading).where(col(MeterReading.meter_id) == meter.id,
                                   col(MeterReading.at) == at)
    )).one_or_none()
    if existing is not None:
        return await _as_stored(db, meter, existing)

    if profile is None:
        profile = await profile_of(db, meter)
    offset = state.offset_wh
    if state.exchanged_at is not None and at < state.exchanged_at:
        offset = await _offset_at(db, meter.id, at)
    raw = values.energy_import_wh
    billed = None if raw is None else raw + offset
    power = _power(values)
    previous = (
        (state.last_billable_at, state.last_billable_wh)
        if state.last_billable_at is not None and state.last_billable_wh is not None
        else None
    )
    verdict = judge(
        previous, at, billed,
        power_limit_w=max_power_w(meter.profile),
        poll_s=meter.poll_s or DEFAULT_POLL_S,
        last_reading_at=state.last_reading_at,
        step_wh=register_step_wh(profile, raw or 0),
        power_unreadable=values.power_w is None or power is None,
    )
    if OUT_OF_RANGE in verdict.flags:
        raw = billed = None  # garbage: not worth a number in the database
    reading = MeterReading(
        meter_id=meter.id, at=at, energy_import_wh=raw, offset_wh=offset, power_w=power,
        flags=list(verdict.flags), billable=verdict.billable, received_at=received_at or at,
    )
    db.add(reading)

    if state.last_reading_at is None or at > state.last_reading_at:
        state.last_reading_at = at
        if raw is not None:
            state.last_energy_wh = raw
    if verdict.billable:
        state.last_billable_at, state.last_billable_wh = at, billed
        # A billable reading closes what was open; what it found itself (a gap) stays open.
        opened = [flag for flag in verdict.flags if flag not in state.flags]
        state.flags = list(verdict.flags)
    else:
        opened = [flag for flag in verdict.flags if flag not in state.flags]
        state.flags = ordered([*state.flags, *verdict.flags])
    state.failures, state.backed_off_until, state.last_failure = 0, None, None
    db.add(state)
    await db.flush()
    if opened:
        log.warning("meter_flagged", meter=meter.id, site=meter.site_id, flags=opened,
                    at=at.isoformat(), energy_import_wh=raw, billable=verdict.billable)
    return StoredReading(
        meter_id=meter.id, account_id=meter.account_id, tariff_id=meter.tariff_id,
        site_id=meter.site_id, at=at, energy_wh=billed, power_w=power,
        billable=verdict.billable, flags=verdict.flags, previous_billable=previous,
    )


def _power(values: MeterValues) -> int | None:
    if values.power_w is None:
        return None
    watts = int(values.power_w.to_integral_value(ROUND_HALF_EVEN))
    return watts if -_INT32_MAX <= watts <= _INT32_MAX else None


async def _as_stored(db: AsyncSession, meter: Meter, reading: MeterReading) -> StoredReading:
    """A stored reading as `store_reading` returned it when it was first stored."""
    previous = (await db.exec(
        select(col(MeterReading.at), col(MeterReading.energy_import_wh),
               col(MeterReading.offset_wh))
        .where(col(MeterReading.meter_id) == meter.id, col(MeterReading.billable),
               col(MeterReading.at) < reading.at)
        .order_by(col(MeterReading.at).desc())
        .limit(1)
    )).first()
    energy = (None if reading.energy_import_wh is None
              else reading.energy_import_wh + reading.offset_wh)
    return StoredReading(
        meter_id=meter.id, account_id=meter.account_id, tariff_id=meter.tariff_id,
        site_id=meter.site_id, at=reading.at, energy_wh=energy, power_w=reading.power_w,
        billable=reading.billable, flags=tuple(reading.flags),
        previous_billable=None if previous is None or previous[1] is None
        else (previous[0], previous[1] + previous[2]),  # billable readings have a register
    )


async def _offset_at(db: AsyncSession, meter_id: str, at: datetime) -> int:
    """The offset in force at `at`: the exchanges recorded at or before it."""
    total = (await db.exec(
        select(func.coalesce(func.sum(MeterExchange.old_final_wh - MeterExchange.new_initial_wh),
                             0))
        .where(col(MeterExchange.meter_id) == meter_id, col(MeterExchange.at) <= at)
    )).one()
    return int(total)


async def readings(
    db: AsyncSession, meter_id: str, *, limit: int = 100, before: datetime | None = None
) -> Sequence[MeterReading]:
    """The meter's stored readings, newest first: `limit` of them taken before `before`."""
    query = select(MeterReading).where(col(MeterReading.meter_id) == meter_id)
    if before is not None:
        query = query.where(col(MeterReading.at) < before)
    query = query.order_by(col(MeterReading.at).desc()).limit(limit)
    return (await db.exec(query)).all()


async def latest_readings(
    db: AsyncSession, meter_ids: Iterable[str]
) -> dict[str, MeterReading]:
    """Each meter's latest stored reading (the one its standing names), by meter id."""
    ids = sorted(set(meter_ids))
    if not ids:
        return {}
    rows = (await db.exec(
        select(MeterReading).join(
            MeterState,
            (col(MeterState.meter_id) == col(MeterReading.meter_id))
            & (col(MeterState.last_reading_at) == col(MeterReading.at)),
        ).where(col(MeterReading.meter_id).in_(ids))
    )).all()
    return {reading.meter_id: reading for reading in rows}


# ---- exchanges ----------------------------------------------------------------------------------


async def record_exchange(
    db: AsyncSession,
    meter_id: str,
    at: datetime,
    old_final_wh: int,
    new_initial_wh: int,
    recorded_by: str,
    *,
    now: datetime,
) -> MeterExchange:
    """Record that the meter was exchanged (or reset) at `at`: the old meter's final register
    `old_final_wh`, the new one's first `new_initial_wh`. From then on the billed register is
    the new meter's plus the offset, so billing continues across the exchange; the open
    `counter_backwards` (and `absurd_jump`) flags, which the new meter's register caused, are
    cleared. Raises ExchangeError listing every problem; changes nothing then. Flushes only."""
    problems: list[tuple[str, str]] = []
    meter = await db.get(Meter, meter_id)
    if meter is None:
        raise ExchangeError([("meter_id", f"unknown meter {meter_id!r}")])
    state = await meter_state(db, meter_id)
    for name, value in (("old_final_wh", old_final_wh), ("new_initial_wh", new_initial_wh)):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((name, f"must be a whole number of Wh, not {value!r}"))
        elif not 0 <= value <= MAX_REGISTER_WH:
            problems.append((name, f"must be 0..{MAX_REGISTER_WH} Wh, not {value}"))
    if not recorded_by or not recorded_by.strip():
        problems.append(("recorded_by", "required: who records the exchange"))
    if not isinstance(at, datetime) or at.tzinfo is None:
        problems.append(("at", "must be a time with its time zone"))
    else:
        if at > now:
            problems.append(("at", f"{_iso(at)} is in the future"))
        if state.exchanged_at is not None and at <= state.exchanged_at:
            problems.append(("at", f"must be after the previous exchange at "
                                   f"{_iso(state.exchanged_at)}"))
        if state.last_billable_at is not None and at < state.last_billable_at:
            problems.append(("at", f"is before the last billed reading at "
                                   f"{_iso(state.last_billable_at)}: an exchange ends the "
                                   "readings before it"))
        elif (state.last_billable_wh is not None and isinstance(old_final_wh, int)
              and old_final_wh < state.last_billable_wh - state.offset_wh):
            problems.append(("old_final_wh", f"{old_final_wh} Wh is below the old meter's last "
                             f"billed reading, {state.last_billable_wh - state.offset_wh} Wh"))
    if problems:
        raise ExchangeError(problems)

    exchange = MeterExchange(
        meter_id=meter_id, at=at, old_final_wh=old_final_wh, new_initial_wh=new_initial_wh,
        recorded_by=recorded_by.strip()[:120], recorded_at=now,
    )
    db.add(exchange)
    state.offset_wh += old_final_wh - new_initial_wh
    state.exchanged_at = at
    state.flags = [flag for flag in state.flags if flag not in (COUNTER_BACKWARDS, ABSURD_JUMP)]
    db.add(state)
    await db.flush()
    log.info("meter_exchanged", meter=meter_id, site=meter.site_id, at=_iso(at),
             old_final_wh=old_final_wh, new_initial_wh=new_initial_wh, offset_wh=state.offset_wh,
             recorded_by=exchange.recorded_by)
    return exchange


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")

