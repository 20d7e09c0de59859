"""Which alerts a wallet movement raises: a pure comparison of the wallet before and after.

- low balance: once per downward crossing of each threshold by the balance; a threshold is
  re-armed only by a top-up that lifts the balance back above it;
- credit exhausted: when available money reaches zero or less (re-armed once it is positive);
- emergency credit started: when the resident activates it;
- supply cut / restored: reported by whoever switches the supply (`wallet.service.note_supply`).

Alerts raised by the device side go through `wallet.alert_outbox.raise_alert` directly, with the
facts `wallet.texts.FACTS` documents: a laundry cycle done or stopped, a supply warning, and for
staff a device's fault (`DeviceFault`) and its end.

Alerts are written to the outbox (`wallet.models.AlertOutbox`) by `wallet.alert_outbox.raise_alert`
inside the movement's transaction and delivered after commit by `wallet.notify.deliver_pending`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class AlertKind(StrEnum):
    LOW_BALANCE = "low_balance"
    CREDIT_EXHAUSTED = "credit_exhausted"
    EMERGENCY_CREDIT_STARTED = "emergency_credit_started"
    SUPPLY_CUT = "supply_cut"
    SUPPLY_RESTORED = "supply_restored"


class DeviceFault(StrEnum):
    """What went wrong with a machine or meter ("device_fault" alerts, for staff)."""

    RELAY_UNREACHABLE = "relay_unreachable"  # no answer from the relay
    RELAY_STUCK_ON = "relay_stuck_on"  # reads back on after it was switched off
    RELAY_STUCK_OFF = "relay_stuck_off"  # reads back off after it was switched on
    READINGS_LOST = "readings_lost"  # power or energy readings stopped coming
    SUPPLY_RELAY_FAILED = "supply_relay_failed"  # a meter's disconnect relay did not switch


@dataclass(frozen=True, slots=True)
class AlertState:
    """What has been alerted already (kept on the wallet row)."""

    fired: frozenset[Decimal] = frozenset()
    exhausted: bool = False


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    threshold: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    alerts: tuple[Alert, ...]
    state: AlertState
    changed: bool = field(default=False)


def evaluate(
    thresholds: tuple[Decimal, ...],
    state: AlertState,
    *,
    balance_before: Decimal,
    balance_after: Decimal,
    available_after: Decimal,
    top_up: bool,
) -> Evaluation:
    fired = set(state.fired)
    alerts: list[Alert] = []
    if top_up:
        fired = {threshold for threshold in fired if balance_after < threshold}
    for threshold in sorted(thresholds, reverse=True):
        if balance_before >= threshold > balance_after and threshold not in fired:
            alerts.append(Alert(AlertKind.LOW_BALANCE, threshold))
            fired.add(threshold)
    exhausted = state.exhausted
    if available_after <= 0 and not exhausted:
        alerts.append(Alert(AlertKind.CREDIT_EXHAUSTED))
        exhausted = True
    elif available_after > 0:
        exhausted = False
    new_state = AlertState(frozenset(fired), exhausted)
    return Evaluation(tuple(alerts), new_state, new_state != state)
