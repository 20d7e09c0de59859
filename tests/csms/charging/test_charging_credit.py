"""Credit runs out: stop and alert; a friendly window lets it run below zero; a blocked account
cannot start; a free account is recorded, not debited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import select

from csms.charging.models import SessionStatus
from csms.db.engine import session_factory
from tests.csms.charging.conftest import Rig, minutes, wait_until
from wallet.models import AlertOutbox
from wallet.service import correct, set_policy


async def policy(rig: Rig, document: dict[str, Any], account: str = "a-01") -> None:
    async with session_factory(rig.engine)() as db:
        await set_policy(db, account, document, at=rig.clock())
        await db.commit()


async def lower_balance_to(rig: Rig, amount: Decimal, account: str = "a-01") -> None:
    async with session_factory(rig.engine)() as db:
        await correct(db, account_id=account, amount=amount - Decimal("50.00"),
                      reason="test", staff="test", key=f"test:{account}", at=rig.clock())
        await db.commit()


async def alerts(rig: Rig) -> list[str]:
    async with session_factory(rig.engine)() as db:
        return [a.kind for a in (await db.exec(select(AlertOutbox))).all()]


async def test_credit_runs_out_stops_the_session_and_alerts(rig: Rig) -> None:
    await lower_balance_to(rig, Decimal("3.00"))
    box = await rig.box("WB-A-01")
    reply = await box.start16("04A2B3C4", 0, minutes(0))
    tx = int(reply.transaction_id)
    assert reply.id_tag_info["status"] == "Accepted"
    assert await rig.held() == Decimal("3.00")  # the initial hold cut to what is there
    for step in range(1, 4):
        rig.clock.at(step * 10)
        await box.meter16(tx, step * 2000, minutes(step * 10))
    await rig.settle_commands()
    assert box.memory.remote_stops == []  # 2.78 of 3.00: still fits
    rig.clock.at(40)
    await box.meter16(tx, 8000, minutes(40))  # 3.71 > 3.00
    await wait_until(lambda: box.memory.remote_stops == [str(tx)])
    row = await rig.session(tx)
    assert "credit_stop" in row.flags and row.stop_requests == 1
    assert await rig.held() == Decimal("3.00")
    assert "charging_stopped" in await alerts(rig)
    assert "credit_exhausted" in await alerts(rig)
    rig.clock.at(41)
    await box.stop16(tx, 8100, minutes(41), reason="Remote")
    row = await rig.session(tx)
    assert row.status == SessionStatus.COMPLETED and row.gross == Decimal("3.76")
    assert await rig.balance() == Decimal("-0.76")  # what was used before the station stopped


async def test_friendly_window_keeps_charging_below_zero(rig: Rig) -> None:
    await lower_balance_to(rig, Decimal("3.00"))
    # 17:00-20:00 in Berlin covers the whole session.
    await policy(rig, {"friendly": {"daily": {"from": "16:00", "to": "20:00"}}})
    box = await rig.box("WB-A-01")
    tx = int((await box.start16("04A2B3C4", 0, minutes(0))).transaction_id)
    for step in range(1, 6):
        rig.clock.at(step * 10)
        await box.meter16(tx, step * 2000, minutes(step * 10))
    await rig.settle_commands()
    assert box.memory.remote_stops == []
    row = await rig.session(tx)
    assert "friendly_credit" in row.flags and row.live_gross == Decimal("4.64")
    await box.stop16(tx, 10000, minutes(51))
    assert await rig.balance() == Decimal("3.00") - Decimal("4.64")


async def test_blocked_account_cannot_start(rig: Rig) -> None:
    await policy(rig, {"mode": "blocked"})
    box = await rig.box("WB-A-01")
    assert await box.sim.authorize("04A2B3C4") == "Blocked"
    reply = await box.start16("04A2B3C4", 0, minutes(0))
    assert reply.id_tag_info["status"] == "Blocked"
    assert await rig.held() == Decimal("0.00")


async def test_free_account_is_recorded_not_debited(rig: Rig) -> None:
    await policy(rig, {"mode": "free"})
    box = await rig.box("WB-B-01")
    reply = await box.event201("Started", 0, "free-1", minutes(0), wh=0, state="Charging",
                               token="04A2B3C4")
    assert reply.id_token_info["status"] == "Accepted"
    rig.clock.at(30)
    await box.event201("Updated", 1, "free-1", minutes(30), wh=5000, state="Charging")
    rig.clock.at(31)
    reply = await box.event201("Ended", 2, "free-1", minutes(31), wh=5000, state="Idle")
    assert reply.total_cost == 0  # "0.00": a free session
    row = await rig.session_by_tx("WB-B-01", "free-1")
    assert row.free and row.gross == Decimal("2.32") and row.entry_id is None
    assert await rig.balance() == Decimal("50.00")
    assert await rig.held() == Decimal("0.00")
