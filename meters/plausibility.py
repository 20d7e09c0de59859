"""Whether a meter reading may be billed: pure functions, no I/O, no clock.

A reading is judged against the last *billable* reading of its meter (time and billed register,
exchange offsets included), the last reading of any kind (for gaps) and the most energy the
flat's supply can carry. What it finds is a set of flags for the installer; a reading is
billable when none of them blocks billing:

Blocking flags (the reading is stored, not billed):

- `counter_backwards`: the register is below the last billable value (meter exchanged or
  reset); nothing is billed until it passes that value again or an installer records an
  exchange.
- `absurd_jump`: more energy since the last billable reading than the supply can have carried
  in that time (`max_energy_wh`).
- `not_a_number`: the energy register held NaN or infinity (the meter has no value).
- `out_of_range`: the register is negative or beyond any flat meter (over 10^15 Wh): garbage.
- `out_of_order`: the reading is not later than the last billable one (a clock set back);
  billing intervals only move forward.

Flags for the installer only (the reading is billed):

- `gap`: no reading for more than `GAP_POLL_PERIODS` poll periods. The line needs a look, but
  the energy across a gap is still what the register says, so it is billed.
- `power_unreadable`: the power register held NaN or infinity (or a value no line carries);
  power is not stored, energy still counts.

A reading that is not billable leaves the last billable reading where it was, so the next
billable one bills the whole span: nothing is lost, nothing is billed twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Final

from meters.profiles import ENERGY_IMPORT_WH, MeterProfile, Register

COUNTER_BACKWARDS: Final = "counter_backwards"
ABSURD_JUMP: Final = "absurd_jump"
NOT_A_NUMBER: Final = "not_a_number"
OUT_OF_RANGE: Final = "out_of_range"
OUT_OF_ORDER: Final = "out_of_order"
GAP: Final = "gap"
POWER_UNREADABLE: Final = "power_unreadable"

#: Every flag in the order readings list them.
FLAGS: Final[tuple[str, ...]] = (
    COUNTER_BACKWARDS, ABSURD_JUMP, NOT_A_NUMBER, OUT_OF_RANGE, OUT_OF_ORDER, GAP,
    POWER_UNREADABLE,
)
#: The flags that keep a reading from being billed.
BLOCKING: Final = frozenset({COUNTER_BACKWARDS, ABSURD_JUMP, NOT_A_NUMBER, OUT_OF_RANGE,
                             OUT_OF_ORDER})

#: A reading more than this many poll periods after the previous one is flagged `gap`.
GAP_POLL_PERIODS: Final = 3

# The most a flat's supply can carry. A direct-connected flat meter sits behind the building's
# meter fuse, at most 63 A per phase for direct metering (German TAB practice: larger
# connections are metered through current transformers, not by these meters), at the nominal
# 230 V: 14,490 W per phase. A fuse or breaker carries up to 1.45 times its rating for up to an
# hour before it must trip (IEC 60898-1's conventional tripping current), so more than 1.45
# times that energy over the elapsed time cannot have flowed: the register jumped.
MAX_CURRENT_A: Final = 63
NOMINAL_VOLTAGE_V: Final = 230
PHASE_LIMIT_W: Final = MAX_CURRENT_A * NOMINAL_VOLTAGE_V  # 14,490 W
OVERLOAD_FACTOR: Final = Decimal("1.45")

#: Built-in profiles of single-phase meters; every other meter may carry three phases (a custom
#: profile is given the larger limit: a limit too low would refuse real consumption).
SINGLE_PHASE_PROFILES: Final = frozenset({"eastron-sdm120"})

#: No flat meter counts beyond this (1 TWh); a register beyond it (or negative) is garbage.
MAX_REGISTER_WH: Final = 10**15


def phases(profile_id: str) -> int:
    return 1 if profile_id in SINGLE_PHASE_PROFILES else 3


def max_power_w(profile_id: str) -> int:
    """The flat's supply limit for a meter of this profile: phases x 63 A x 230 V."""
    return phases(profile_id) * PHASE_LIMIT_W


def register_step_wh(profile: MeterProfile | None, wh: int) -> int:
    """How coarse the profile's energy register is around `wh`, in whole Wh (at least 1): an
    integer register counts in steps of its scale (EM24: 100 Wh), a float32 one in its unit in
    the last place at that size (an SDM630 at 100,000 kWh: 7.8 Wh). Two readings' difference
    may be off by that much, so the jump limit allows it. Unknown profile: 1 kWh."""
    if profile is None:
        return 1000
    register: Register | None = profile.registers.get(ENERGY_IMPORT_WH)
    if register is None:
        return 1000
    if register.type != "float32":
        return max(1, int(register.scale.to_integral_value(ROUND_CEILING)))
    raw = abs(Decimal(wh) / register.scale)
    _, exponent = math.frexp(float(raw)) if raw else (0.0, -126)
    ulp = Decimal(2) ** (max(exponent, -125) - 24)  # float32: 24-bit significand
    return max(1, int((ulp * register.scale).to_integral_value(ROUND_CEILING)))


def max_energy_wh(power_limit_w: int, elapsed_s: Decimal, step_wh: int = 1) -> int:
    """The most energy a supply of `power_limit_w` can have carried in `elapsed_s` (with the
    overload allowance), plus the register's step and a Wh for whole-Wh flooring."""
    if elapsed_s <= 0:
        return step_wh + 1
    energy = Decimal(power_limit_w) * OVERLOAD_FACTOR * elapsed_s / 3600
    return int(energy.to_integral_value(ROUND_CEILING)) + step_wh + 1


@dataclass(frozen=True, slots=True)
class Verdict:
    """The flags a reading earned, in `FLAGS` order."""

    flags: tuple[str, ...]

    @property
    def billable(self) -> bool:
        return not BLOCKING.intersection(self.flags)


def judge(
    last_billable: tuple[datetime, int] | None,
    at: datetime,
    wh: int | None,
    *,
    power_limit_w: int,
    poll_s: int,
    last_reading_at: datetime | None = None,
    step_wh: int = 1,
    power_unreadable: bool = False,
) -> Verdict:
    """Judge a reading at `at` whose billed register is `wh` (None: the register held NaN).

    `last_billable` is the last billable reading's time and billed register (None for a meter
    never read: this reading is its baseline); `last_reading_at` the last reading of any kind
    (defaults to the last billable one's time); `power_limit_w` the supply limit
    (`max_power_w`); `poll_s` the meter's poll period; `step_wh` its register's coarseness
    (`register_step_wh`)."""
    if poll_s <= 0:
        raise ValueError(f"poll_s must be positive, not {poll_s}")
    found: set[str] = set()
    previous_at = last_reading_at or (last_billable[0] if last_billable else None)
    if previous_at is not None and (at - previous_at).total_seconds() > GAP_POLL_PERIODS * poll_s:
        found.add(GAP)
    if power_unreadable:
        found.add(POWER_UNREADABLE)
    if wh is None:
        found.add(NOT_A_NUMBER)
    elif not 0 <= wh <= MAX_REGISTER_WH:
        found.add(OUT_OF_RANGE)
    elif last_billable is not None:
        billed_at, billed_wh = last_billable
        elapsed = at - billed_at
        if elapsed.total_seconds() <= 0:
            found.add(OUT_OF_ORDER)
        elif wh < billed_wh:
            found.add(COUNTER_BACKWARDS)
        else:
            elapsed_s = Decimal(elapsed.days * 86_400 + elapsed.seconds) + Decimal(
                elapsed.microseconds
            ) / 1_000_000
            if wh - billed_wh > max_energy_wh(power_limit_w, elapsed_s, step_wh):
                found.add(ABSURD_JUMP)
    return Verdict(tuple(flag for flag in FLAGS if flag in found))


def ordered(flags: set[str] | frozenset[str] | list[str] | tuple[str, ...]) -> list[str]:
    """Flags in `FLAGS` order (unknown ones after, sorted), without repeats."""
    known = [flag for flag in FLAGS if flag in flags]
    return known + sorted(set(flags) - set(FLAGS))
