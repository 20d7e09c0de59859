"""A stateful property test: random sequences of top-ups, holds, settlements, releases,
debits, corrections, voucher redemptions and replays against a model; the invariants are checked
after every step (on SQLite; each run starts from a copy of one migrated database)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)
from sqlmodel import func, select

from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from tests.wallet.conftest import seed_site
from wallet.errors import CreditRefused, IdempotencyConflict
from wallet.ledger import ledger_balance, trial_balance
from wallet.models import HoldRecord
from wallet.service import (
    correct,
    debit,
    open_hold,
    release_hold,
    settle_hold,
    top_up_cash,
    wallet_view,
)
from wallet.vouchers import create_batch, redeem_voucher

T = TypeVar("T")
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
ACCOUNTS = ("a-01", "a-02")
VOUCHER = Decimal("15.00")
START_MINIMUM = Decimal("1.00")
_TEMPLATE: dict[str, Path] = {}


def template() -> Path:
    """One migrated database with the site, copied for every run (migrating is the slow part)."""
    if "path" not in _TEMPLATE:
        path = Path(tempfile.mkdtemp()) / "template.db"

        async def build() -> None:
            engine = create_engine(f"sqlite:///{path}")
            await upgrade_database(engine)
            await seed_site(session_factory(engine))
            await engine.dispose()

        asyncio.run(build())
        _TEMPLATE["path"] = path
    return _TEMPLATE["path"]


money = st.integers(min_value=1, max_value=6000).map(lambda cents: Decimal(cents) / 100)
account = st.sampled_from(ACCOUNTS)


class WalletMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    settled = Bundle("settled")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp())
        shutil.copy(template(), self.directory / "w.db")
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(f"sqlite:///{self.directory / 'w.db'}")
        self.factory = session_factory(self.engine)
        self.balance = {name: Decimal(0) for name in ACCOUNTS}
        self.open: dict[str, tuple[str, Decimal]] = {}  # hold id -> (account, amount)
        self.receipts: dict[str, tuple[str, Decimal]] = {}
        self.codes: list[str] = []
        self.redeemed: dict[str, str] = {}
        self.failures = {name: 0 for name in ACCOUNTS}
        self.locked: set[str] = set()
        self.counter = 0

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def step(self, call: Any) -> Any:
        """One call in its own committed transaction (rolled back when it raises)."""

        async def go() -> Any:
            async with self.factory() as session:
                try:
                    result = await call(session)
                except BaseException:
                    await session.rollback()
                    raise
                await session.commit()
                return result

        return self.run(go())

    def key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def available(self, name: str) -> Decimal:
        held = sum((amount for owner, amount in self.open.values() if owner == name), Decimal(0))
        return self.balance[name] - held

    @initialize()
    def vouchers(self) -> None:
        batch = self.step(lambda s: create_batch(
            s, site_id="lindenhof", value=VOUCHER, count=4, expires_at=AT + timedelta(days=9),
            key="batch", at=AT))
        self.codes = list(batch.codes)

    @rule(name=account, amount=money, receipt=st.sampled_from([f"R-{n}" for n in range(8)]))
    def top_up(self, name: str, amount: Decimal, receipt: str) -> None:
        previous = self.receipts.get(receipt)
        call = lambda s: top_up_cash(s, account_id=name, amount=amount, receipt=receipt,  # noqa: E731
                                     staff="desk", at=AT)
        if previous is not None and previous != (name, amount):
            try:
                self.step(call)
            except IdempotencyConflict:
                return
            raise AssertionError("a receipt was booked twice with different contents")
        self.step(call)
        if previous is None:
            self.receipts[receipt] = (name, amount)
            self.balance[name] += amount

    @rule(target=holds, name=account, amount=money)
    def open(self, name: str, amount: Decimal) -> str:
        available = self.available(name)
        key = self.key("hold")
        try:
            hold = self.step(lambda s: open_hold(s, account_id=name, amount=amount, key=key,
                                                 service="charging", at=AT))
        except CreditRefused as refused:
            assert available < START_MINIMUM or amount > available, refused
            return "refused"
        assert available >= START_MINIMUM and amount <= available
        self.open[hold.id] = (name, amount)
        return str(hold.id)

    @rule(target=settled, hold=consumes(holds),
          share=st.sampled_from(["0", "0.3", "1", "1.5"]))
    def settle(self, hold: str, share: str) -> tuple[str, Decimal, str]:
        if hold not in self.open:
            return ("", Decimal(0), "")
        name, amount = self.open.pop(hold)
        gross = (amount * Decimal(share)).quantize(Decimal("0.01"))
        net = (gross / Decimal("1.19")).quantize(Decimal("0.0001"))
        key = self.key("settle")
        self.step(lambda s: settle_hold(s, hold, net=net, vat=gross - net, gross=gross,
                                        service="charging", key=key, at=AT))
        self.balance[name] -= gross
        return (hold, gross, key)

    @rule(done=settled)
    def replay_settlement(self, done: tuple[str, Decimal, str]) -> None:
        hold, gross, key = done
        if not hold:
            return
        net = (gross / Decimal("1.19")).quantize(Decimal("0.0001"))
        self.step(lambda s: settle_hold(s, hold, net=net, vat=gross - net, gross=gross,
                                        service="charging", key=key, at=AT))

    @rule(hold=consumes(holds))
    def release(self, hold: str) -> None:
        if hold in self.open:
            self.step(lambda s: release_hold(s, hold, key=f"release-{hold}", at=AT))
            del self.open[hold]

    @rule(name=account, amount=money)
    def meter_debit(self, name: str, amount: Decimal) -> None:
        key = self.key("meter")
        self.step(lambda s: debit(s, account_id=name, net=amount, vat=Decimal(0), gross=amount,
                                  service="electricity", key=key, at=AT))
        self.balance[name] -= amount

    @rule(name=account, amount=money, negative=st.booleans())
    def correction(self, name: str, amount: Decimal, negative: bool) -> None:
        amount = -amount if negative else amount
        key = self.key("correction")
        self.step(lambda s: correct(s, account_id=name, amount=amount, reason="model",
                                    staff="anna", key=key, at=AT))
        self.balance[name] += amount

    @rule(name=account, index=st.integers(min_value=0, max_value=3))
    def redeem(self, name: str, index: int) -> None:
        code = self.codes[index]
        result = self.step(lambda s: redeem_voucher(s, account_id=name, code=code, at=AT))
        owner = self.redeemed.get(code)
        if name in self.locked:  # the clock stands still here, so a lock never expires
            assert (result.ok, result.reason) == (False, "locked")
        elif owner is None:
            assert result.ok and result.reason == "redeemed"
            self.redeemed[code] = name
            self.balance[name] += VOUCHER
            self.failures[name] = 0
        elif owner == name:
            assert result.ok and result.reason == "replayed"
        else:
            assert (result.ok, result.reason) == (False, "already_redeemed")
            self.failures[name] += 1
            if self.failures[name] == 5:
                self.locked.add(name)
                self.failures[name] = 0

    @invariant()
    def books_balance(self) -> None:
        async def check() -> None:
            async with self.factory() as session:
                assert await trial_balance(session) == 0
                for name in ACCOUNTS:
                    view = await wallet_view(session, name, AT)
                    assert view.balance == self.balance[name]
                    assert await ledger_balance(session, f"wallet:{name}") == view.balance
                    assert view.available == self.available(name)
                    assert view.holds == view.balance - view.available
                open_count = (await session.exec(
                    select(func.count()).select_from(HoldRecord)
                    .where(HoldRecord.status == "open"))).one()
                assert open_count == len(self.open)
                outstanding = await ledger_balance(session, "vouchers_outstanding:lindenhof")
                assert outstanding == VOUCHER * (len(self.codes) - len(self.redeemed))

        if self.codes:
            self.run(check())


TestWallet = WalletMachine.TestCase
TestWallet.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
