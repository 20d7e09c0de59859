"""The clone check runs whenever a badge is used: the same card at the wallboxes of two buildings
within ten minutes raises one staff alert (webhook only), the same building does not."""

from __future__ import annotations

from sqlmodel import select

from csms.db.engine import session_factory
from tests.csms.charging.conftest import Rig, minutes
from wallet.models import AlertOutbox


async def staff_alerts(rig: Rig) -> list[AlertOutbox]:
    async with session_factory(rig.engine)() as db:
        return list((await db.exec(select(AlertOutbox).where(
            AlertOutbox.kind == "badge_clone_suspected"))).all())


async def test_one_badge_in_two_buildings_within_minutes_is_a_staff_alert(rig: Rig) -> None:
    house_a, house_b = await rig.box("WB-A-01"), await rig.box("WB-B-01")
    rig.clock.at(0)
    assert await house_a.sim.authorize("04A2B3C4") == "Accepted"
    rig.clock.at(2)
    assert await house_a.sim.authorize("04A2B3C4") == "Accepted"  # same building: no alert
    assert await staff_alerts(rig) == []
    rig.clock.at(4)
    assert await house_b.sim.authorize("04A2B3C4") == "Accepted"
    alerts = await staff_alerts(rig)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.audience == "staff" and alert.account_id == "a-01"
    assert alert.payload["uid"] == "04A2B3C4"
    assert (alert.payload["first_point"], alert.payload["second_point"]) == (
        "WB-A-01", "WB-B-01")
    assert alert.payload["gap_s"] == 240  # from the earliest use in the other building
    # The start that follows the Authorize is the same suspicion, not a second alert.
    rig.clock.at(5)
    reply = await house_b.event201("Started", 0, "tx-b", minutes(5), wh=0, token="04A2B3C4")
    assert reply.id_token_info["status"] == "Accepted"
    assert len(await staff_alerts(rig)) == 1
    # Long after, the other building is ordinary use again: no alert (the badge is busy at
    # house B, which is the concurrent-use limit's answer, not a clone).
    rig.clock.at(30)
    assert await house_a.sim.authorize("04A2B3C4") == "ConcurrentTx"
    assert len(await staff_alerts(rig)) == 1
