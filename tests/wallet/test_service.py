"""Wallet operations on both databases: the worked example, holds, top-ups, corrections, debt
recovery, emergency credit, free and blocked modes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pricing import load_tariff, load_usage, rate
from wallet.errors import CreditRefused, HoldClosed, IdempotencyConflict, InvalidInput
from wallet.ledger import ledger_balance, trial_balance
from wallet.models import AlertOutbox
from wallet.service import (
    activate_emergency_credit,
    adjust_hold,
    correct,
    credit_decision,
    debit,
    debt_outstanding,
    get_policy,
    ledger_page,
    open_hold,
    record_debt,
    recover_debt_daily,
    release_hold,
    set_policy,
    settle_hold,
    top_up_cash,
    wallet_view,
)
from wallet.vouchers import create_batch, redeem_voucher

Factory = async_sessionmaker[AsyncSession]
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)  # a Wednesday, no friendly window

WALLBOX = load_tariff(
    {"id": "wallbox", "currency": "EUR", "vat_percent": "19",
     "components": [{"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.30"}]}]},
    site_timezone="Europe/Berlin", site_country="DE",
)
LAUNDRY = load_tariff(
    {"id": "laundry", "currency": "EUR", "vat_percent": "19",
     "components": [{"dimension": "flat", "price": "2.52"}]},
    site_timezone="Europe/Berlin", site_country="DE",
)


def usage(wh: int, minutes: int = 120) -> object:
    end = AT + timedelta(minutes=minutes)
    return load_usage({"samples": [
        {"at": AT.isoformat(), "energy_wh": 0, "charging": True},
        {"at": end.isoformat(), "energy_wh": wh, "charging": True},
    ]})


async def balances(session: AsyncSession, account: str = "a-01") -> tuple[Decimal, ...]:
    view = await wallet_view(session, account, AT)
    assert await ledger_balance(session, f"wallet:{account}") == view.balance
    assert await trial_balance(session) == 0
    return view.balance, view.holds, view.available


async def test_worked_example_top_up_charge_settle_laundry_voucher(factory: Factory) -> None:
    async with factory() as session:
        # 1. Cash at the desk.
        topped = await top_up_cash(session, account_id="a-01", amount=Decimal("50.00"),
                                   receipt="R-100", staff="desk-1", at=AT)
        assert topped.credited == Decimal("50.00")
        assert await balances(session) == (Decimal("50.00"), 0, Decimal("50.00"))
        await session.commit()

        # 2. A charging session starts: 30.00 held, then lowered to the live cost estimate.
        hold = await open_hold(session, account_id="a-01", amount=Decimal("30.00"),
                               key="WB-1:tx-1:start", service="charging", reference="WB-1/tx-1",
                               at=AT)
        assert await balances(session) == (Decimal("50.00"), Decimal("30.00"), Decimal("20.00"))
        await adjust_hold(session, hold.id, Decimal("12.50"), key="WB-1:tx-1:mv-1", at=AT)
        assert await balances(session) == (Decimal("50.00"), Decimal("12.50"), Decimal("37.50"))
        await session.commit()

        # 3. It ends: 22 kWh at 0.30 net, 19 % VAT, rated by pricing.
        bill = rate(WALLBOX, usage(22_000))  # type: ignore[arg-type]
        assert (bill.net, bill.vat, bill.gross) == (Decimal("6.6000"), Decimal("1.2500"),
                                                    Decimal("7.85"))
        settled = await settle_hold(session, hold.id, net=bill.net, vat=bill.vat,
                                    gross=bill.gross, service="charging",
                                    key="WB-1:tx-1:stop", description="charging WB-1", at=AT)
        assert settled.hold.status == "settled" and settled.entry is not None
        assert await balances(session) == (Decimal("42.15"), 0, Decimal("42.15"))
        assert await ledger_balance(session, "revenue:lindenhof:charging") == Decimal("6.60")
        assert await ledger_balance(session, "vat_payable:lindenhof") == Decimal("1.25")
        await session.commit()

        # 4. A laundry cycle.
        wash = rate(LAUNDRY, usage(800, 90))  # type: ignore[arg-type]
        cycle = await open_hold(session, account_id="a-01", amount=wash.gross,
                                key="washer-1:c-1:start", service="laundry", at=AT)
        await settle_hold(session, cycle.id, net=wash.net, vat=wash.vat, gross=wash.gross,
                          service="laundry", key="washer-1:c-1:stop", at=AT)
        assert wash.gross == Decimal("3.00")
        assert await balances(session) == (Decimal("39.15"), 0, Decimal("39.15"))
        assert await ledger_balance(session, "revenue:lindenhof:laundry") == Decimal("2.52")
        await session.commit()

        # 5. A voucher from the owner's batch.
        batch = await create_batch(session, site_id="lindenhof", value=Decimal("25.00"), count=2,
                                   expires_at=AT + timedelta(days=365), key="batch-1",
                                   staff="owner", at=AT)
        assert batch.codes is not None and len(batch.codes) == 2
        await session.commit()
        redeemed = await redeem_voucher(session, account_id="a-01", code=batch.codes[0], at=AT)
        assert redeemed.ok and redeemed.amount == Decimal("25.00")
        assert await balances(session) == (Decimal("64.15"), 0, Decimal("64.15"))
        assert await ledger_balance(session, "vouchers_outstanding:lindenhof") == Decimal("25.00")
        assert await ledger_balance(session, "cash:lindenhof") == Decimal("-50.00")
        await session.commit()

    # Replaying every step moves nothing.
    async with factory() as session:
        await top_up_cash(session, account_id="a-01", amount=Decimal("50.00"),
                          receipt="R-100", staff="desk-1", at=AT)
        again = await open_hold(session, account_id="a-01", amount=Decimal("30.00"),
                                key="WB-1:tx-1:start", service="charging", at=AT)
        assert again.id == hold.id and again.status == "settled"
        replay = await settle_hold(session, hold.id, net=bill.net, vat=bill.vat,
                                   gross=bill.gross, service="charging", key="WB-1:tx-1:stop",
                                   at=AT)
        assert replay.entry is not None and replay.entry.replayed
        assert (await redeem_voucher(session, account_id="a-01", code=batch.codes[0],
                                     at=AT)).reason == "replayed"
        assert await balances(session) == (Decimal("64.15"), 0, Decimal("64.15"))
        page = await ledger_page(session, "a-01", limit=2)
        assert [line.kind for line in page.lines] == ["voucher", "settlement"]
        older = await ledger_page(session, "a-01", limit=2, before=page.next_before)
        assert [line.amount for line in older.lines] == [Decimal("-7.85"), Decimal("50.00")]
        assert older.next_before is None


async def test_start_refused_with_reason_below_start_minimum(factory: Factory) -> None:
    async with factory() as session:
        with pytest.raises(CreditRefused) as refused:
            await open_hold(session, account_id="a-01", amount=Decimal("5.00"), key="h1",
                            service="charging", at=AT)
        assert refused.value.reason == "below_start_minimum"
        await top_up_cash(session, account_id="a-01", amount=Decimal("4.00"), receipt="R-1",
                          staff="desk", at=AT)
        with pytest.raises(CreditRefused) as refused:
            await open_hold(session, account_id="a-01", amount=Decimal("5.00"), key="h1",
                            service="charging", at=AT)
        assert refused.value.reason == "insufficient_funds"
        partial = await open_hold(session, account_id="a-01", amount=Decimal("5.00"), key="h1",
                                  service="charging", at=AT, allow_partial=True)
        assert partial.amount == Decimal("4.00")
        with pytest.raises(CreditRefused) as refused:
            await adjust_hold(session, partial.id, Decimal("4.01"), key="h1:1", at=AT)
        assert refused.value.reason == "credit_exhausted"
        assert (await credit_decision(session, "a-01", AT)).may_start is False


async def test_friendly_window_lets_running_use_exceed_credit(factory: Factory) -> None:
    night = datetime(2026, 3, 25, 21, 0, tzinfo=UTC)  # 22:00 in Berlin
    async with factory() as session:
        await set_policy(session, "a-01", {"friendly": {"daily": {"from": "18:00",
                                                                   "to": "08:00"}}}, at=AT)
        await top_up_cash(session, account_id="a-01", amount=Decimal("4.00"), receipt="R-1",
                          staff="desk", at=night)
        hold = await open_hold(session, account_id="a-01", amount=Decimal("4.00"), key="h1",
                               service="charging", at=night)
        raised = await adjust_hold(session, hold.id, Decimal("9.00"), key="h1:1", at=night)
        assert raised.amount == Decimal("9.00")
        decision = await credit_decision(session, "a-01", night)
        assert decision.must_stop is False and decision.reason == "friendly_daily"
        morning = datetime(2026, 3, 26, 7, 0, tzinfo=UTC)
        assert (await credit_decision(session, "a-01", morning)).must_stop is True
        await settle_hold(session, hold.id, net=Decimal("7.56"), vat=Decimal("1.44"),
                          gross=Decimal("9.00"), service="charging", key="h1:stop", at=morning)
        assert (await wallet_view(session, "a-01", morning)).balance == Decimal("-5.00")


async def test_hold_lifecycle_errors(factory: Factory) -> None:
    async with factory() as session:
        await top_up_cash(session, account_id="a-01", amount=Decimal("20.00"), receipt="R-1",
                          staff="desk", at=AT)
        hold = await open_hold(session, account_id="a-01", amount=Decimal("5.00"), key="h1",
                               service="laundry", at=AT)
        with pytest.raises(InvalidInput, match="gross"):
            await settle_hold(session, hold.id, net=Decimal("1.00"), vat=Decimal("0.19"),
                              gross=Decimal("1.20"), service="laundry", key="h1:stop", at=AT)
        with pytest.raises(InvalidInput, match="service"):
            await settle_hold(session, hold.id, net=Decimal("1.00"), vat=Decimal("0.19"),
                              gross=Decimal("1.19"), service="Laundry!", key="h1:stop", at=AT)
        released = await release_hold(session, hold.id, key="h1:release", at=AT)
        assert released.status == "released"
        assert (await release_hold(session, hold.id, key="h1:release", at=AT)).status == "released"
        with pytest.raises(HoldClosed):
            await settle_hold(session, hold.id, net=Decimal("1.00"), vat=Decimal("0.19"),
                              gross=Decimal("1.19"), service="laundry", key="h1:stop", at=AT)
        with pytest.raises(HoldClosed):
            await adjust_hold(session, hold.id, Decimal("6"), key="h1:2", at=AT)
        assert await balances(session) == (Decimal("20.00"), 0, Decimal("20.00"))


async def test_cash_receipt_used_for_another_account_is_refused(factory: Factory) -> None:
    async with factory() as session:
        await top_up_cash(session, account_id="a-01", amount=Decimal("10.00"), receipt="R-7",
                          staff="desk", at=AT)
        with pytest.raises(IdempotencyConflict):
            await top_up_cash(session, account_id="a-02", amount=Decimal("10.00"),
                              receipt="R-7", staff="desk", at=AT)
        with pytest.raises(InvalidInput, match="amount"):
            await top_up_cash(session, account_id="a-02", amount=Decimal("-1"), receipt="R-8",
                              staff="desk", at=AT)


async def test_correction_is_a_new_entry_with_reason_and_staff(factory: Factory) -> None:
    async with factory() as session:
        await top_up_cash(session, account_id="a-01", amount=Decimal("10.00"), receipt="R-1",
                          staff="desk", at=AT)
        with pytest.raises(InvalidInput, match="reason"):
            await correct(session, account_id="a-01", amount=Decimal("-1.00"), reason=" ",
                          staff="anna", key="c1", at=AT)
        entry = await correct(session, account_id="a-01", amount=Decimal("-2.50"),
                              reason="double-counted wash", staff="anna", key="c1", at=AT)
        assert (entry.reason, entry.staff) == ("double-counted wash", "anna")
        assert (await correct(session, account_id="a-01", amount=Decimal("-2.50"),
                              reason="double-counted wash", staff="anna", key="c1",
                              at=AT)).replayed
        assert await balances(session) == (Decimal("7.50"), 0, Decimal("7.50"))


async def test_emergency_credit_is_repaid_first_then_debt_recovery(factory: Factory) -> None:
    async with factory() as session:
        await set_policy(session, "a-01", {
            "emergency_credit": "10.00",
            "debt_recovery": {"topup_percent": "20", "weekly_cap": "5.00"},
        }, at=AT)
        await record_debt(session, account_id="a-01", amount=Decimal("100.00"),
                          reason="arrears 2025", staff="anna", key="debt-1", at=AT)
        with pytest.raises(CreditRefused):
            await open_hold(session, account_id="a-01", amount=Decimal("6.00"), key="h1",
                            service="charging", at=AT)
        view = await activate_emergency_credit(session, "a-01", at=AT)
        assert (view.credit, view.available, view.emergency_active) == (
            Decimal("10.00"), Decimal("10.00"), True)
        hold = await open_hold(session, account_id="a-01", amount=Decimal("6.00"), key="h1",
                               service="charging", at=AT)
        await settle_hold(session, hold.id, net=Decimal("5.04"), vat=Decimal("0.96"),
                          gross=Decimal("6.00"), service="charging", key="h1:stop", at=AT)
        assert (await wallet_view(session, "a-01", AT)).balance == Decimal("-6.00")
        # 16.00: 6.00 repays the emergency credit, 20 % of the other 10.00 recovers debt.
        topped = await top_up_cash(session, account_id="a-01", amount=Decimal("16.00"),
                                   receipt="R-1", staff="desk", at=AT)
        assert (topped.credited, topped.debt_recovered) == (Decimal("14.00"), Decimal("2.00"))
        view = await wallet_view(session, "a-01", AT)
        assert (view.balance, view.emergency_active, view.credit) == (
            Decimal("8.00"), False, Decimal("0"))
        # The weekly cap: 5.00 a week, 2.00 taken already.
        topped = await top_up_cash(session, account_id="a-01", amount=Decimal("50.00"),
                                   receipt="R-2", staff="desk", at=AT)
        assert topped.debt_recovered == Decimal("3.00")
        topped = await top_up_cash(session, account_id="a-01", amount=Decimal("50.00"),
                                   receipt="R-3", staff="desk", at=AT + timedelta(days=7))
        assert topped.debt_recovered == Decimal("5.00")
        assert await debt_outstanding(session, "a-01") == Decimal("90.00")
        assert await trial_balance(session) == 0


async def test_daily_rate_and_kwh_surcharge_recover_debt(factory: Factory) -> None:
    async with factory() as session:
        await set_policy(session, "a-01", {"debt_recovery": {"daily_rate": "0.50",
                                                             "surcharge_per_kwh": "0.05"}}, at=AT)
        await record_debt(session, account_id="a-01", amount=Decimal("1.20"), reason="arrears",
                          staff="anna", key="debt-1", at=AT)
        await top_up_cash(session, account_id="a-01", amount=Decimal("30.00"), receipt="R-1",
                          staff="desk", at=AT)
        first = await recover_debt_daily(session, "a-01", day=date(2026, 3, 25), at=AT)
        again = await recover_debt_daily(session, "a-01", day=date(2026, 3, 25), at=AT)
        assert first is not None and again is not None and again.id == first.id
        assert await debt_outstanding(session, "a-01") == Decimal("0.70")
        # A meter interval of 10 kWh: 0.50 surcharge.
        result = await debit(session, account_id="a-01", net=Decimal("2.52"), vat=Decimal("0.48"),
                             gross=Decimal("3.00"), service="electricity",
                             key="m-a-01:2026-03-25T12", energy_wh=10_000, at=AT)
        assert result.entry is not None and result.decision.must_stop is False
        assert await debt_outstanding(session, "a-01") == Decimal("0.20")
        # Never more than is outstanding.
        await debit(session, account_id="a-01", net=Decimal("2.52"), vat=Decimal("0.48"),
                    gross=Decimal("3.00"), service="electricity", key="m-a-01:2026-03-25T13",
                    energy_wh=10_000, at=AT)
        assert await debt_outstanding(session, "a-01") == 0
        assert await recover_debt_daily(session, "a-01", day=date(2026, 3, 26), at=AT) is None
        assert await balances(session) == (Decimal("22.80"), 0, Decimal("22.80"))


async def test_free_mode_records_usage_without_debit_until_a_top_up(factory: Factory) -> None:
    async with factory() as session:
        await set_policy(session, "a-01", {"mode": "free"}, at=AT)
        hold = await open_hold(session, account_id="a-01", amount=Decimal("30.00"), key="h1",
                               service="charging", at=AT)
        assert hold.free
        settled = await settle_hold(session, hold.id, net=Decimal("10.00"), vat=Decimal("1.90"),
                                    gross=Decimal("11.90"), service="charging", key="h1:stop",
                                    at=AT)
        assert settled.entry is None and settled.hold.gross == Decimal("11.90")
        assert await balances(session) == (0, 0, 0)
        await top_up_cash(session, account_id="a-01", amount=Decimal("5.00"), receipt="R-1",
                          staff="desk", at=AT)
        assert (await get_policy(session, "a-01")).mode == "prepaid"


async def test_blocked_mode_refuses_and_stops(factory: Factory) -> None:
    async with factory() as session:
        await top_up_cash(session, account_id="a-01", amount=Decimal("50.00"), receipt="R-1",
                          staff="desk", at=AT)
        await set_policy(session, "a-01", {"mode": "blocked"}, at=AT)
        with pytest.raises(CreditRefused) as refused:
            await open_hold(session, account_id="a-01", amount=Decimal("5.00"), key="h1",
                            service="charging", at=AT)
        assert refused.value.reason == "blocked"
        decision = await credit_decision(session, "a-01", AT)
        assert decision.must_stop and decision.cut_supply


async def test_low_balance_alerts_once_per_crossing_rearmed_by_top_up(factory: Factory) -> None:
    async with factory() as session:
        await set_policy(session, "a-01", {"low_balance_thresholds": ["10.00", "5.00"]}, at=AT)
        await top_up_cash(session, account_id="a-01", amount=Decimal("12.00"), receipt="R-1",
                          staff="desk", at=AT)

        async def spend(amount: str, key: str) -> None:
            await debit(session, account_id="a-01", net=Decimal(amount), vat=Decimal(0),
                        gross=Decimal(amount), service="base_fee", key=key, at=AT)

        async def kinds() -> list[tuple[str, str | None]]:
            rows = (await session.exec(select(AlertOutbox).order_by(AlertOutbox.id))).all()
            return [(row.kind, row.payload["threshold"]) for row in rows]

        await spend("3.00", "d1")  # 12 -> 9: crosses 10
        await spend("1.00", "d2")  # 9 -> 8: nothing new
        await correct(session, account_id="a-01", amount=Decimal("4.00"), reason="refund",
                      staff="anna", key="c1", at=AT)  # 12, not a top-up: stays fired
        await spend("3.00", "d3")  # 12 -> 9: not again
        await spend("5.00", "d4")  # 9 -> 4: crosses 5
        assert await kinds() == [("low_balance", "10.00"), ("low_balance", "5.00")]
        await top_up_cash(session, account_id="a-01", amount=Decimal("4.00"), receipt="R-2",
                          staff="desk", at=AT)  # 8: re-arms 5 only
        await spend("4.00", "d5")  # 8 -> 4
        await spend("4.00", "d6")  # 4 -> 0: credit exhausted
        assert await kinds() == [("low_balance", "10.00"), ("low_balance", "5.00"),
                                 ("low_balance", "5.00"), ("credit_exhausted", None)]


async def test_online_payment_seam_tops_up_once_per_provider_reference(factory: Factory) -> None:
    from wallet.payments import ConfirmedPayment, record_online_payment

    payment = ConfirmedPayment("pi_123", "a-01", Decimal("30.00"), "EUR")
    async with factory() as session:
        first = await record_online_payment(session, "acme", payment, at=AT)
        again = await record_online_payment(session, "acme", payment, at=AT)
        assert (first.entry.replayed, again.entry.replayed) == (False, True)
        with pytest.raises(InvalidInput, match="currency"):
            await record_online_payment(
                session, "acme", ConfirmedPayment("pi_9", "a-01", Decimal("1"), "CHF"), at=AT)
        assert await balances(session) == (Decimal("30.00"), 0, Decimal("30.00"))
        assert await ledger_balance(session, "payments:lindenhof:acme") == Decimal("-30.00")
