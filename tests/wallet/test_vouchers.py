"""Voucher codes: check digit, batches, single use, the failure counter and its lock."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.errors import IdempotencyConflict, InvalidInput
from wallet.ledger import ledger_balance, trial_balance
from wallet.models import RedemptionFailure, VoucherCode
from wallet.service import wallet_view
from wallet.vouchers import (
    CODE_DIGITS,
    check_digit,
    create_batch,
    is_valid,
    new_code,
    normalise,
    redeem_voucher,
)

Factory = async_sessionmaker[AsyncSession]
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)


def test_codes_have_19_digits_and_a_valid_check_digit() -> None:
    for _ in range(200):
        code = new_code()
        assert len(code) == CODE_DIGITS >= 16 and code.isdigit() and is_valid(code)


def test_check_digit_catches_every_single_error_and_neighbour_swap() -> None:
    rng = random.Random(7)
    for _ in range(300):
        body = "".join(rng.choice("0123456789") for _ in range(CODE_DIGITS - 1))
        code = body + check_digit(body)
        for position, digit in itertools.product(range(CODE_DIGITS), "0123456789"):
            if code[position] != digit:
                assert not is_valid(code[:position] + digit + code[position + 1:])
        for position in range(CODE_DIGITS - 1):
            a, b = code[position], code[position + 1]
            if a != b:
                assert not is_valid(code[:position] + b + a + code[position + 2:])


async def make_batch(session: AsyncSession, count: int = 3, *, key: str = "b1",
                     expires: timedelta = timedelta(days=30)) -> list[str]:
    batch = await create_batch(session, site_id="lindenhof", value=Decimal("10.00"), count=count,
                               expires_at=AT + expires, key=key, staff="owner", at=AT)
    assert batch.codes is not None
    await session.commit()
    return list(batch.codes)


async def test_batch_issue_is_booked_and_replay_returns_no_codes(factory: Factory) -> None:
    async with factory() as session:
        codes = await make_batch(session)
        assert all(len(normalise(code)) == CODE_DIGITS for code in codes)
        assert await ledger_balance(session, "vouchers_outstanding:lindenhof") == Decimal("30.00")
        again = await create_batch(session, site_id="lindenhof", value=Decimal("10.00"), count=3,
                                   expires_at=AT + timedelta(days=30), key="b1", at=AT)
        assert again.codes is None
        with pytest.raises(IdempotencyConflict):
            await create_batch(session, site_id="lindenhof", value=Decimal("5.00"), count=3,
                               expires_at=AT + timedelta(days=30), key="b1", at=AT)
        assert await ledger_balance(session, "vouchers_outstanding:lindenhof") == Decimal("30.00")
        # Only digests are stored.
        stored = (await session.exec(select(VoucherCode.code_sha256))).all()
        assert not {normalise(code) for code in codes} & set(stored)


async def test_bad_batch_input_names_the_field(factory: Factory) -> None:
    async with factory() as session:
        for kwargs, field in (({"count": 0}, "count"), ({"value": Decimal("-1")}, "value"),
                              ({"expires_at": AT - timedelta(days=1)}, "expires_at")):
            args = {"site_id": "lindenhof", "value": Decimal("10.00"), "count": 2,
                    "expires_at": AT + timedelta(days=1), "key": "b", "at": AT, **kwargs}
            with pytest.raises(InvalidInput, match=field):
                await create_batch(session, **args)  # type: ignore[arg-type]


async def test_code_is_single_use_across_accounts(factory: Factory) -> None:
    async with factory() as session:
        code = (await make_batch(session))[0]
        first = await redeem_voucher(session, account_id="a-01", code=code, at=AT)
        await session.commit()
        assert first.ok and first.reason == "redeemed"
        other = await redeem_voucher(session, account_id="a-02", code=code, at=AT)
        await session.commit()
        assert (other.ok, other.reason, other.failures) == (False, "already_redeemed", 1)
        assert (await wallet_view(session, "a-01", AT)).balance == Decimal("10.00")
        assert (await wallet_view(session, "a-02", AT)).balance == 0
        assert await ledger_balance(session, "vouchers_outstanding:lindenhof") == Decimal("20.00")
        assert await trial_balance(session) == 0


async def test_five_failures_lock_redemption_for_15_minutes(factory: Factory) -> None:
    async with factory() as session:
        code = (await make_batch(session))[0]
        digits = normalise(code)
        wrong_check = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        unknown = new_code()
        attempts = ["123", wrong_check, unknown, unknown, "4" * 19]
        outcomes = []
        for attempt in attempts:
            outcomes.append(await redeem_voucher(session, account_id="a-01", code=attempt, at=AT))
            await session.commit()
        assert [o.reason for o in outcomes] == ["malformed", "check_digit", "unknown", "unknown",
                                                "check_digit"]
        assert outcomes[-1].locked_until == AT + timedelta(minutes=15)
        # Locked: even the right code is refused, and not counted.
        locked = await redeem_voucher(session, account_id="a-01", code=code,
                                      at=AT + timedelta(minutes=14, seconds=59))
        assert (locked.ok, locked.reason) == (False, "locked")
        await session.commit()
        # The other household is not affected.
        other = await redeem_voucher(session, account_id="a-02", code=unknown, at=AT)
        assert other.failures == 1
        await session.commit()
        later = await redeem_voucher(session, account_id="a-01", code=code,
                                     at=AT + timedelta(minutes=15))
        assert later.ok
        await session.commit()
        count = (await session.exec(select(func.count()).select_from(RedemptionFailure))).one()
        assert count == 6


async def test_expired_codes_are_refused(factory: Factory) -> None:
    async with factory() as session:
        code = (await make_batch(session, expires=timedelta(hours=1)))[0]
        late = await redeem_voucher(session, account_id="a-01", code=code,
                                    at=AT + timedelta(hours=1))
        assert (late.ok, late.reason) == (False, "expired")


async def test_failed_redemptions_survive_the_callers_commit(factory: Factory) -> None:
    async with factory() as session:
        result = await redeem_voucher(session, account_id="a-01", code=new_code(), at=AT)
        assert not result.ok
        await session.commit()
    async with factory() as session:
        again = await redeem_voucher(session, account_id="a-01", code=new_code(), at=AT)
        assert again.failures == 2
