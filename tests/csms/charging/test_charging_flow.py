"""A paid session end to end on both OCPP versions: authorise, hold, live cost, settle once, and
the charged amount equal to `volthaus price` of the session's stored usage."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from billing import usage_document
from csms.charging.models import SessionStatus
from csms.charging.sessions import session_usage
from csms.cli.main import main
from csms.db.engine import session_factory
from tests.csms.charging.conftest import Rig, minutes, wait_until
from wallet.models import JournalEntry


def volthaus_price(
    tmp_path: Path, tariff: Mapping[str, object], usage: Mapping[str, object]
) -> dict:
    """`volthaus price` on the stored tariff and usage, in this process (a process per call
    costs seconds here; `volthaus price` as a real process is tests/cli/test_price_cli.py)."""
    (tmp_path / "tariff.json").write_text(json.dumps(tariff))
    (tmp_path / "usage.json").write_text(json.dumps(usage))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["price", str(tmp_path / "tariff.json"), str(tmp_path / "usage.json")])
    assert code == 0
    result: dict = json.loads(printed.getvalue())
    return result


async def cli_bill(rig: Rig, session_id: int, tmp_path: Path) -> dict:
    async with session_factory(rig.engine)() as db:
        row = await rig.session(session_id)
        built = await session_usage(db, row.use)
    assert built is not None
    return volthaus_price(tmp_path, row.tariff, usage_document(built.usage))


async def test_paid_session_ocpp16(rig: Rig, tmp_path: Path) -> None:
    box = await rig.box("WB-A-01")
    rig.clock.at(0)
    assert await box.sim.authorize("04A2B3C4") == "Accepted"
    reply = await box.start16("04A2B3C4", 1000, minutes(0))
    assert reply.id_tag_info["status"] == "Accepted"
    tx = int(reply.transaction_id)
    assert await rig.held() == Decimal("5.00")
    for step in range(1, 7):
        rig.clock.at(step * 10)
        await box.meter16(tx, 1000 + step * 1800, minutes(step * 10))
    live = await rig.session(tx)
    assert live.status == SessionStatus.ACTIVE
    assert live.live_gross == Decimal("5.01")
    assert await rig.held() == Decimal("5.01")  # raised with the cost
    rig.clock.at(61)
    await box.stop16(tx, 1000 + 6 * 1800, minutes(61), tag="04A2B3C4")
    row = await rig.session(tx)
    assert row.status == SessionStatus.COMPLETED
    assert row.energy_wh == 10800
    assert row.gross == Decimal("5.01") and row.net == Decimal("4.2120")
    assert await rig.balance() == Decimal("50.00") - row.gross
    assert await rig.held() == Decimal("0.00")
    bill = await cli_bill(rig, tx, tmp_path)
    assert Decimal(bill["gross"]) == row.gross and Decimal(bill["net"]) == row.net
    assert bill["lines"] == row.lines
    # Repeated stop (its reply was lost): billed once.
    await box.stop16(tx, 1000 + 6 * 1800, minutes(61), tag="04A2B3C4")
    assert await rig.balance() == Decimal("50.00") - row.gross
    async with session_factory(rig.engine)() as db:
        from sqlmodel import select

        entries = (await db.exec(select(JournalEntry).where(
            JournalEntry.kind == "settlement"))).all()
    assert len(entries) == 1 and entries[0].key == f"charging:WB-A-01:{tx}:settle"


async def test_paid_session_ocpp201(rig: Rig, tmp_path: Path) -> None:
    box = await rig.box("WB-B-01")
    rig.clock.at(0)
    reply = await box.call(__import__("ocpp.v201.call", fromlist=["Authorize"]).Authorize(
        id_token={"id_token": "04A2B3C4", "type": "ISO14443"}))
    info = reply.id_token_info
    assert info["status"] == "Accepted"
    assert "Laden Lindenhof 2026" in info["personal_message"]["content"]
    assert info["personal_message"]["language"] == "de"
    tx = "B-tx-1"
    reply = await box.event201("Started", 0, tx, minutes(0), wh=500, state="Charging",
                               token="04A2B3C4")
    assert reply.id_token_info["status"] == "Accepted"
    for step in range(1, 5):
        rig.clock.at(step * 15)
        reply = await box.event201("Updated", step, tx, minutes(step * 15),
                                   wh=500 + step * 2500, state="Charging")
        assert reply.total_cost is None
    await rig.settle_commands()
    await wait_until(lambda: len(box.received("CostUpdated")) >= 4)
    costs = [Decimal(str(p["total_cost"])) for p in box.received("CostUpdated")]
    assert costs == sorted(costs) and costs[-1] == Decimal("4.64")
    rig.clock.at(61)
    reply = await box.event201("Ended", 5, tx, minutes(61), wh=10500, state="Idle",
                               reason="Local")
    row = await rig.session_by_tx("WB-B-01", tx)
    assert row.status == SessionStatus.COMPLETED
    assert Decimal(str(reply.total_cost)) == row.gross == Decimal("4.64")
    assert await rig.balance() == Decimal("45.36")
    bill = await cli_bill(rig, row.id, tmp_path)
    assert Decimal(bill["gross"]) == row.gross
    # Ended again (lost reply): same answer, billed once.
    again = await box.event201("Ended", 5, tx, minutes(61), wh=10500, state="Idle",
                               reason="Local")
    assert Decimal(str(again.total_cost)) == row.gross
    assert await rig.balance() == Decimal("45.36")
