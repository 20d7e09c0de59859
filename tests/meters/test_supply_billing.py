"""Supply billing through the one paid-use flow: a month of a flat's readings is debited reading by
reading, the debits add up to `volthaus price` of the month's usage, the month's end splits a
reading, and replaying readings debits nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from billing import PaidUse, PaidUseFlow, UseStatus, usage_document, usage_of
from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site
from csms.inventory.tariffs import tariff_document
from meters.supply_billing import SupplyBilling, SupplyReading, register_at
from wallet.models import JournalEntry
from wallet.service import record_debt, wallet_view

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
VOLTHAUS = Path(sys.executable).parent / "volthaus"

# Seed 001's household electricity: HT/NT with holidays, a base fee per day, a power price from
# the month's peak 15-minute demand, and debt repayment by kWh and by day.
HOUSEHOLD = {
    "id": "household-pms", "name": "Haushaltsstrom PMS", "currency": "EUR", "vat_percent": "19",
    "components": [
        {"dimension": "energy", "name": "NT", "tiers": [{"from_wh": 0, "price": "0.21"}],
         "when": {"days": ["sat", "sun", "holiday"]}},
        {"dimension": "energy", "name": "HT", "tiers": [{"from_wh": 0, "price": "0.32"}],
         "when": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "06:00", "to": "22:00"}},
        {"dimension": "energy", "name": "NT", "tiers": [{"from_wh": 0, "price": "0.21"}]},
        {"dimension": "day", "price": "0.45", "name": "base fee"},
        {"dimension": "demand", "price": "8.50", "interval_s": 900},
    ],
    "debt_recovery": {"per_kwh": "0.05", "per_day": "0.30"},
}
START = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 02:00 in Berlin on 1 March


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def supply(engine: AsyncEngine) -> AsyncIterator[tuple[AsyncEngine, SupplyBilling, Clock]]:
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["tariffs"].append(HOUSEHOLD)
    for account in document["accounts"]:
        if account["id"] == "b-03":
            account["opening_balance"] = "400.00"
    await import_site(engine, document)
    async with session_factory(engine)() as db:
        # Arrears taken over from the previous supplier, repaid through the tariff.
        await record_debt(db, account_id="b-03", amount=Decimal("120.00"), reason="arrears",
                          staff="test", key="test:arrears", at=START - timedelta(days=1))
        await db.commit()
    clock = Clock()
    flow = PaidUseFlow(session_factory(engine), clock=clock)
    yield engine, SupplyBilling(flow, tariff_document), clock
    await flow.drain()


def load_w(at: datetime) -> int:
    """A practice's draw: more by day, a peak on Tuesday afternoons."""
    local = at + timedelta(hours=1)
    base = 900 if 7 <= local.hour < 19 else 250
    return base + (2400 if local.weekday() == 1 and 14 <= local.hour < 16 else 0)


async def feed(engine: AsyncEngine, billing: SupplyBilling, clock: Clock,
               readings: list[tuple[datetime, int]]) -> None:
    previous: tuple[datetime, int] | None = None
    for at, wh in readings:
        clock.now = at
        async with session_factory(engine)() as db:
            await billing.on_reading(db, SupplyReading(
                "m-b-03", "lindenhof", "b-03", "household-pms", at, wh, previous, 43_470))
            await db.commit()
        previous = (at, wh)


def readings_every(hours: int, until: datetime) -> list[tuple[datetime, int]]:
    out = []
    at, wh = START, 1_234_567
    while at <= until:
        out.append((at, wh))
        wh += load_w(at) * hours
        at += timedelta(hours=hours)
    return out


async def price_total(use: PaidUse, engine: AsyncEngine, tmp_path: Path) -> Decimal:
    async with session_factory(engine)() as db:
        built = await usage_of(db, use)
    assert built is not None
    tariff = {**use.tariff, "timezone": "Europe/Berlin", "country": "DE", "region": "BY"}
    (tmp_path / "tariff.json").write_text(json.dumps(tariff))
    (tmp_path / "usage.json").write_text(json.dumps(usage_document(built.usage)))
    done = subprocess.run([str(VOLTHAUS), "price", str(tmp_path / "tariff.json"),
                           str(tmp_path / "usage.json")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    bill: dict[str, Any] = json.loads(done.stdout)
    return Decimal(bill.get("total", bill["gross"]))


async def test_a_months_debits_equal_the_price_of_its_usage_and_the_month_end_splits(
    supply: tuple[AsyncEngine, SupplyBilling, Clock], tmp_path: Path
) -> None:
    engine, billing, clock = supply
    readings = readings_every(3, datetime(2026, 4, 2, 12, 0, tzinfo=UTC))
    await feed(engine, billing, clock, readings)
    async with session_factory(engine)() as db:
        uses = {u.use_ref: u for u in (await db.exec(
            select(PaidUse).where(col(PaidUse.kind) == "supply"))).all()}
        entries = (await db.exec(select(JournalEntry).where(
            col(JournalEntry.key).like("supply:%")))).all()
        balance = (await wallet_view(db, "b-03", clock())).balance
    march, april = uses["2026-03"], uses["2026-04"]
    assert march.status == UseStatus.COMPLETED and april.status == "active"
    # March ends at local midnight (22:00 UTC, summer time starts on the 29th), split exactly.
    march_end = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    assert march.ended_at == march_end and april.started_at == march_end
    before = max(r for r in readings if r[0] <= march_end)
    after = min(r for r in readings if r[0] > march_end)
    assert march.last_register_wh == register_at(march_end, before, after)
    # Every debit of March adds up to the price of March's usage (recovery included).
    total = await price_total(march, engine, tmp_path)
    assert (march.charged_gross or 0) + (march.charged_recovery or 0) == total
    assert (march.gross or 0) + (march.charged_recovery or 0) == total
    lines = {line["dimension"] for line in march.lines}
    assert {"energy", "day", "demand"} <= lines
    # The wallet lost exactly what March and April so far cost.
    debited = (march.charged_gross or 0) + (march.charged_recovery or 0) + (
        april.charged_gross or 0) + (april.charged_recovery or 0)
    assert Decimal("400.00") - balance == debited
    assert len(entries) > 200  # one debit per reading (those that cost something)


async def test_replayed_readings_debit_nothing_twice(
    supply: tuple[AsyncEngine, SupplyBilling, Clock]
) -> None:
    engine, billing, clock = supply
    readings = readings_every(6, datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    await feed(engine, billing, clock, readings)
    async with session_factory(engine)() as db:
        first = (await wallet_view(db, "b-03", clock())).balance
    await feed(engine, billing, clock, readings)  # the whole stream again
    await feed(engine, billing, clock, readings[3:5])  # and a piece of it
    async with session_factory(engine)() as db:
        assert (await wallet_view(db, "b-03", clock())).balance == first
    assert first < Decimal("400.00")
