"""The running cost a 2.0.1 station shows follows the energy as the final bill will (issue 13,
point 9), tested on the wire with a real OCPP 2.0.1 client (the `ocpp` library's ChargePoint).

"The growing session": 0 Wh at the start, then 1,833 Wh every ten minutes (11 kW), as the demo
(`volthaus simulate --station WB-B-01`) charges. After every TransactionEvent the station has
received, by the time the event's answer is in, the running cost of the energy so far:
`pricing.rate` of the readings it sent, the function of the final bill. The Ended answer's
`totalCost` is the bill and the wallet's debit. Each shape below is one a real 2.0.1 station
may send (OCPP 2.0.1 part 2: `measurand` defaults to Energy.Active.Import.Register, `unit` to
Wh, `multiplier` to 0; readings per phase and location beside the total; several meterValue
entries per event; chargingState only when it changed).
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v201 import call as call201
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.charging.demo import DemoPlan, run_demo
from csms.charging.models import SessionStatus
from pricing import Sample, Usage, load_tariff, rate
from tests.csms.charging.conftest import (
    PASSWORDS,
    Box,
    Clock,
    Rig,
    close_rig,
    demo_document,
    make_rig,
    minutes,
    stamp,
)

STEP_WH = 1833  # 11 kW for ten minutes, as the demo charges
TAG = "04A2B3C4"  # account a-01, 50.00 EUR


def wallbox_tariff() -> Any:
    document = next(t for t in demo_document()["tariffs"] if t["id"] == "wallbox")
    return load_tariff(document, site_timezone="Europe/Berlin", site_country="DE",
                       site_region="BY")


def gross_of(readings: list[tuple[datetime, int]]) -> Decimal:
    """What the final bill of these readings would be: `pricing.rate` of them in time order
    (the highest value where one instant has two), nothing of billing's."""
    by_instant: dict[datetime, int] = {}
    for at, wh in readings:
        by_instant[at] = max(wh, by_instant.get(at, wh))
    samples: list[Sample] = []
    for at in sorted(by_instant):
        wh = by_instant[at]
        samples.append(Sample(at, wh, not samples or wh > samples[-1].energy_wh))
    gross: Decimal = rate(wallbox_tariff(), Usage.of(samples)).gross
    return gross


def cents(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


# What one reading of a shape looks like on the wire (snake_case: the library camelCases it).
Reading = Callable[[int, datetime, str], list[dict[str, Any]]]


def _value(wh: int, context: str) -> dict[str, Any]:
    return {"value": wh, "measurand": "Energy.Active.Import.Register", "context": context,
            "unit_of_measure": {"unit": "Wh"}}


def plain(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    return [{"timestamp": stamp(at), "sampled_value": [_value(wh, context)]}]


def spec_defaults(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    """No measurand, no unit, no context: Energy.Active.Import.Register in Wh by default."""
    return [{"timestamp": stamp(at), "sampled_value": [{"value": wh}]}]


def kwh_float(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    return [{"timestamp": stamp(at), "sampled_value": [
        {"value": wh / 1000, "context": context, "unit_of_measure": {"unit": "kWh"}}]}]


def multiplier(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    """Wh with multiplier 3 (value x 10^3), the register as a station's meter chip scales it."""
    return [{"timestamp": stamp(at), "sampled_value": [
        {"value": wh / 1000, "measurand": "Energy.Active.Import.Register", "context": context,
         "unit_of_measure": {"unit": "Wh", "multiplier": 3}}]}]


def phases_and_locations(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    """Per-phase registers and other measurands before the total; the total at the outlet."""
    third = wh // 3
    values: list[dict[str, Any]] = [
        {**_value(part, context), "phase": phase, "location": "Outlet"}
        for phase, part in (("L1", third), ("L2", third), ("L3", wh - 2 * third))
    ]
    values += [
        {"value": 11000.0, "measurand": "Power.Active.Import", "context": context,
         "unit_of_measure": {"unit": "W"}},
        {"value": 16.0, "measurand": "Current.Import", "phase": "L1", "context": context,
         "unit_of_measure": {"unit": "A"}},
        {**_value(wh, context), "location": "Outlet"},
    ]
    return [{"timestamp": stamp(at), "sampled_value": values}]


def clock_and_periodic(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    """Two meterValue entries: a clock-aligned reading a minute earlier, then the periodic one."""
    if context != "Sample.Periodic":
        return plain(wh, at, context)
    before = max(wh - STEP_WH // 10, 0)
    return [
        {"timestamp": stamp(at - timedelta(minutes=1)),
         "sampled_value": [_value(before, "Sample.Clock")]},
        {"timestamp": stamp(at), "sampled_value": [_value(wh, context)]},
    ]


def signed_float(wh: int, at: datetime, context: str) -> list[dict[str, Any]]:
    """A float register (3666.0) with its signed meter value (OCMF), as Eichrecht stations do."""
    return [{"timestamp": stamp(at), "sampled_value": [{
        "value": float(wh), "measurand": "Energy.Active.Import.Register", "context": context,
        "unit_of_measure": {"unit": "Wh"},
        "signed_meter_value": {"signed_meter_data": "T0NNRnx7fQ==", "signing_method": "ECDSA",
                               "encoding_method": "OCMF", "public_key": "MFkw"},
    }]}]


@dataclass(frozen=True)
class Shape:
    name: str
    reading: Reading
    # chargingState sent on Updated events (None: left out, it did not change)
    state: str | None = "Charging"
    # the event's timestamp after its reading's (stations stamp the message when sending it)
    event_lag_s: int = 0
    trigger: str = "MeterValuePeriodic"

    def readings(self, wh: int, at: datetime, context: str) -> list[tuple[datetime, int]]:
        """The (instant, Wh) the shape's meterValue entries carry (for the expected bill)."""
        found = []
        for entry in self.reading(wh, at, context):
            stamp_at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            totals = [v for v in entry["sampled_value"]
                      if v.get("measurand", "Energy.Active.Import.Register")
                      == "Energy.Active.Import.Register" and "phase" not in v]
            value = Decimal(str(totals[0]["value"]))
            unit = totals[0].get("unit_of_measure", {})
            value = value.scaleb(unit.get("multiplier", 0))
            if unit.get("unit") == "kWh":
                value *= 1000
            found.append((stamp_at, int(value)))
        return found


SHAPES = [
    Shape("plain", plain),
    Shape("spec_defaults", spec_defaults, state=None),
    Shape("kwh_float", kwh_float, event_lag_s=2),
    Shape("multiplier", multiplier, state=None, trigger="ChargingStateChanged"),
    Shape("phases_and_locations", phases_and_locations, event_lag_s=1),
    Shape("clock_and_periodic", clock_and_periodic, state=None, event_lag_s=3),
    Shape("signed_float", signed_float),
]


def last_cost_updated(box: Box, tx: str) -> Decimal | None:
    costs = [p["total_cost"] for p in box.received("CostUpdated") if p["transaction_id"] == tx]
    return cents(costs[-1]) if costs else None


async def event(
    box: Box, shape: Shape, kind: str, seq: int, tx: str, at: datetime, wh: int | None,
    *, state: str | None, context: str = "Sample.Periodic", trigger: str | None = None,
) -> Any:
    info: dict[str, Any] = {"transaction_id": tx}
    if state is not None:
        info["charging_state"] = state
    extra: dict[str, Any] = {}
    if wh is not None:
        extra["meter_value"] = shape.reading(wh, at, context)
    if kind == "Started":
        extra["evse"] = {"id": 1, "connector_id": 1}
        extra["id_token"] = {"id_token": TAG, "type": "ISO14443"}
    sent_at = at + timedelta(seconds=shape.event_lag_s)
    box.tick(sent_at)
    return await box.call(call201.TransactionEvent(
        event_type=kind, timestamp=stamp(sent_at), seq_no=seq, transaction_info=info,
        trigger_reason=trigger or {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
            kind, shape.trigger),
        **extra))


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
async def test_running_cost_follows_the_growing_session(lite: Rig, shape: Shape) -> None:
    rig = lite
    box = await rig.box("WB-B-01")
    tx = f"grow-{shape.name}"
    rig.clock.at(0)
    seen: list[tuple[datetime, int]] = shape.readings(0, minutes(0), "Transaction.Begin")
    reply = await event(box, shape, "Started", 0, tx, minutes(0), 0, state="Charging",
                        context="Transaction.Begin")
    assert reply.id_token_info["status"] == "Accepted"
    assert reply.total_cost is None
    shown: list[tuple[int, Decimal | None]] = []
    for step in range(1, 4):
        wh, at = step * STEP_WH, minutes(step * 10)
        seen += shape.readings(wh, at, "Sample.Periodic")
        reply = await event(box, shape, "Updated", step, tx, at, wh, state=shape.state)
        # 2.0.1: totalCost only once charging ended; the running cost is CostUpdated's.
        assert reply.total_cost is None
        # Already there when the answer arrives: the station's display never lags an event.
        shown.append((wh, last_cost_updated(box, tx)))
        assert shown[-1] == (wh, gross_of(seen)), shown
    # The figures: 3,666 Wh -> 3.7 kWh x 0.39 x 1.19; 5,499 Wh -> 5.5 kWh.
    assert shown[1:] == [(3666, Decimal("1.72")), (5499, Decimal("2.55"))]
    end = minutes(31)
    seen += shape.readings(3 * STEP_WH, end, "Transaction.End")
    reply = await event(box, shape, "Ended", 4, tx, end, 3 * STEP_WH, state="EVConnected",
                        context="Transaction.End", trigger="EVCommunicationLost")
    row = await rig.session_by_tx("WB-B-01", tx)
    assert row.status == SessionStatus.COMPLETED
    final = gross_of(seen)
    assert cents(reply.total_cost) == row.gross == final == Decimal("2.55")
    assert await rig.balance() == Decimal("50.00") - final
    assert await rig.held() == Decimal("0.00")


async def test_running_cost_whatever_order_the_readings_come_in(rig: Rig) -> None:
    """Late, corrected and reading-less messages: the running rating (kept between messages,
    rebuilt when a message does not simply append) shows the rating of all readings so far."""
    box = await rig.box("WB-B-01")
    tx, shape = "grow-order", SHAPES[0]
    seen: list[tuple[datetime, int]] = []
    # (seqNo, minute, Wh or None, chargingState), in the order they arrive.
    script: list[tuple[int, float, int | None, str | None]] = [
        (1, 10, 1833, None),
        (3, 30, 5499, None),  # seqNo 2 is late (queued while offline)
        (2, 20, 3666, None),  # ... and arrives now: before the last reading, nothing changes
        (4, 30, 5600, None),  # the same instant again, a higher (corrected) value
        (5, 35, None, "SuspendedEV"),  # a state change without a reading
        (6, 40, 7332, "Charging"),
        (7, 40, 7332, None),  # a repeated reading
    ]
    rig.clock.at(0)
    seen += shape.readings(0, minutes(0), "Transaction.Begin")
    await event(box, shape, "Started", 0, tx, minutes(0), 0, state="Charging",
                context="Transaction.Begin")
    for seq, minute, wh, state in script:
        if wh is not None:
            seen += shape.readings(wh, minutes(minute), "Sample.Periodic")
        # The server's clock only moves forward (`Box.tick`): a late message arrives late.
        reply = await event(box, shape, "Updated", seq, tx, minutes(minute), wh, state=state)
        assert reply.total_cost is None
        assert last_cost_updated(box, tx) == gross_of(seen), (seq, minute, wh)
    assert last_cost_updated(box, tx) == Decimal("3.43")  # 7,332 Wh -> 7.4 kWh
    reply = await event(box, shape, "Ended", 8, tx, minutes(41), 7332, state="EVConnected",
                        context="Transaction.End")
    seen += shape.readings(7332, minutes(41), "Transaction.End")
    row = await rig.session_by_tx("WB-B-01", tx)
    assert cents(reply.total_cost) == row.gross == gross_of(seen) == Decimal("3.43")
    assert await rig.balance() == Decimal("50.00") - Decimal("3.43")


class WallClock(Clock):
    """The real time: the demo's station stamps its messages with its own (back-dated) clock."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
async def wall_rig(sqlite_engine: AsyncEngine) -> AsyncIterator[Rig]:
    running = await make_rig(sqlite_engine, clock=WallClock())
    yield running
    await close_rig(running)


async def test_the_demo_shows_the_cost_of_each_reading(wall_rig: Rig) -> None:
    """What the tester ran: `volthaus simulate --station WB-B-01 --session 3600
    --meter-interval 600`, which prints the last CostUpdated received when each answer is in.
    The server sent it after the answer, so the demo printed, as often as not, the cost of the
    reading before (1.72 at 5,499 Wh)."""
    plan = DemoPlan(
        url=wall_rig.url, station_id="WB-B-01", protocol="ocpp2.0.1",
        password=PASSWORDS["WB-B-01"], id_tag=TAG, power_w=11000, session_s=3600,
        interval_s=600, time_scale=0.0002,
    )
    out = io.StringIO()
    assert await run_demo(plan, out) == 0
    printed = [(int(wh), Decimal(cost)) for wh, cost in
               re.findall(r"(\d+) Wh, cost so far ([\d.]+)", out.getvalue())]
    start = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    expected = [(k * STEP_WH, gross_of([(start + timedelta(minutes=10 * i), i * STEP_WH)
                                        for i in range(k + 1)])) for k in range(1, 7)]
    assert printed == expected, out.getvalue()
    assert printed[1:3] == [(3666, Decimal("1.72")), (5499, Decimal("2.55"))]
