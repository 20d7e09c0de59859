"""Voucher codes (the seed's TAN top-up): batches created by owners, single-use codes of 19 digits
(18 random, one Damm check digit), a failure counter that locks redemption.

- The check digit (Damm's quasigroup) catches every single wrong digit and every swap of two
  neighbouring digits, so typos are told apart from guesses before any lookup.
- Codes are stored only as SHA-256 digests: the printable list exists once, when the batch is
  created; a copy of the database redeems nothing.
- Issuing a batch credits "vouchers outstanding" against "voucher sales" (what the sellers owe);
  redeeming moves one code's value from vouchers outstanding to the wallet, as a top-up.
- Wrong codes count per account; the fifth in a row locks redemption for 15 minutes. A failed
  redemption is answered as a value, not an exception, so the caller commits the count.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.amounts import AmountInvalid, amount_problems
from wallet.errors import IdempotencyConflict
from wallet.ledger import (
    Entry,
    LedgerKind,
    WalletSnapshot,
    check_key,
    find_entry,
    lock_wallet,
    post,
    site_account,
    site_info,
)
from wallet.models import RedemptionFailure, VoucherBatch, VoucherCode, Wallet
from wallet.topups import top_up

CODE_DIGITS = 19
MAX_FAILURES = 5
LOCK_DURATION = timedelta(minutes=15)
MAX_BATCH = 10_000

# Damm's totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_interim(digits: str) -> int:
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][int(digit)]
    return interim


def check_digit(body: str) -> str:
    return str(damm_interim(body))


def is_valid(code: str) -> bool:
    return len(code) == CODE_DIGITS and code.isdigit() and damm_interim(code) == 0


def normalise(code: str) -> str:
    """What a resident types, printed in groups: spaces and dashes are ignored."""
    return "".join(ch for ch in code if ch not in " -\t")


def printable(code: str) -> str:
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4))


def new_code() -> str:
    body = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS - 1))
    return body + check_digit(body)


def digest(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    site_id: str
    value: Decimal
    count: int
    expires_at: datetime
    # The codes, in print form, only in the answer that created the batch (never stored).
    codes: tuple[str, ...] | None


async def create_batch(
    session: AsyncSession,
    *,
    site_id: str,
    value: Decimal | str,  # typed in: text is checked whole (wallet.amounts)
    count: int,
    expires_at: datetime,
    key: str,
    staff: str | None = None,
    at: datetime,
) -> Batch:
    """Issue `count` codes of `value` each. The value keeps the money rule of `wallet.amounts`
    (the currency's minor unit, at most the site's `max_voucher`); every problem with the input is
    raised at once (`InvalidInputs`). Replaying `key` returns the batch without its codes (they
    were shown once). Flushes, does not commit."""
    check_key(key)
    site = await site_info(session, site_id)
    problems = amount_problems(value, "value", currency=site.currency,
                               maximum=site.max_voucher, per="per voucher")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH:
        problems.append(("count", f"must be a whole number from 1 to {MAX_BATCH}"))
    now = at
    if expires_at.tzinfo is None:
        problems.append(("expires_at", "must carry a time zone"))
    elif expires_at <= now:
        problems.append(("expires_at", "must be in the future"))
    if problems:
        raise AmountInvalid(problems)
    value = Decimal(value)
    existing = (await session.exec(select(VoucherBatch).where(VoucherBatch.key == key))).first()
    if existing is not None:
        if (existing.site_id, existing.value, existing.count) != (site_id, value, count):
            raise IdempotencyConflict(f"key {key!r} created a different batch", field="key")
        return Batch(existing.id, existing.site_id, existing.value, existing.count,
                     existing.expires_at, None)
    batch_id = uuid.uuid4().hex
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_code())
    session.add(VoucherBatch(id=batch_id, key=key, site_id=site_id, value=value, count=count,
                             expires_at=expires_at, created_at=now, created_by=staff))
    await session.flush()
    await session.exec(
        VoucherCode.__table__.insert(),  # type: ignore[attr-defined]
        params=[{"code_sha256": digest(code), "batch_id": batch_id, "last4": code[-4:]}
                for code in codes],
    )
    await post(
        session, key=f"voucher-batch:{batch_id}", site_id=site_id, currency=site.currency,
        kind="voucher_batch", staff=staff, reference=batch_id,
        description=f"{count} vouchers of {value}",
        legs=[(site_account(site_id, LedgerKind.VOUCHER_SALES), -value * count),
              (site_account(site_id, LedgerKind.VOUCHERS), value * count)],
        at=now,
    )
    return Batch(batch_id, site_id, value, count, expires_at,
                 tuple(printable(code) for code in sorted(codes)))


@dataclass(frozen=True, slots=True)
class Redemption:
    ok: bool
    # ok: "redeemed" (or "replayed": this account had redeemed the code already);
    # refused: "locked", "malformed", "check_digit", "unknown", "expired", "already_redeemed".
    reason: str
    amount: Decimal | None = None
    entry: Entry | None = None
    failures: int = 0
    locked_until: datetime | None = None


async def redeem_voucher(
    session: AsyncSession, *, account_id: str, code: str, at: datetime
) -> Redemption:
    """Redeem a code onto the account's wallet, once. Every refusal except `locked` counts as a
    failure; the fifth in a row locks redemption for 15 minutes. The answer is a value either way
    and the caller commits either way (so failures are counted). Locks the wallet."""
    now = at
    wallet = await lock_wallet(session, account_id)
    if wallet.redeem_locked_until is not None and wallet.redeem_locked_until > now:
        return Redemption(False, "locked", failures=wallet.redeem_failures,
                          locked_until=wallet.redeem_locked_until)
    typed = normalise(code) if isinstance(code, str) else ""
    if len(typed) != CODE_DIGITS or not typed.isdigit():
        return await _fail(session, wallet, "malformed", now)
    if damm_interim(typed) != 0:
        return await _fail(session, wallet, "check_digit", now)
    found = (
        await session.exec(
            select(VoucherCode, VoucherBatch)
            .join(VoucherBatch, col(VoucherBatch.id) == VoucherCode.batch_id)
            .where(VoucherCode.code_sha256 == digest(typed))
            .with_for_update()
        )
    ).first()
    if found is None or found[1].site_id != wallet.site_id:
        return await _fail(session, wallet, "unknown", now)
    voucher, batch = found
    if voucher.redeemed_at is not None:
        if voucher.redeemed_by == account_id and voucher.entry_id is not None:
            entry = await find_entry(session, _key(voucher.code_sha256))
            return Redemption(True, "replayed", batch.value, entry)
        return await _fail(session, wallet, "already_redeemed", now)
    if batch.expires_at <= now:
        return await _fail(session, wallet, "expired", now)
    result = await top_up(
        session, account_id=account_id, amount=batch.value, key=_key(voucher.code_sha256),
        source=site_account(wallet.site_id, LedgerKind.VOUCHERS), kind="voucher",
        reference=f"voucher …{voucher.last4}", description="voucher", at=now,
    )
    claimed = await session.exec(
        update(VoucherCode)
        .where(col(VoucherCode.code_sha256) == voucher.code_sha256,
               col(VoucherCode.redeemed_at).is_(None))
        .values(redeemed_at=now, redeemed_by=account_id, entry_id=result.entry.id)
    )
    if claimed.rowcount != 1:  # the row lock above makes this unreachable; the DB decides
        raise IdempotencyConflict("voucher was redeemed concurrently", field="code")
    await session.exec(
        update(Wallet).where(col(Wallet.account_id) == account_id)
        .values(redeem_failures=0, redeem_locked_until=None)
    )
    return Redemption(True, "redeemed", batch.value, result.entry)


def _key(code_sha256: str) -> str:
    return f"voucher:{code_sha256}"


async def _fail(
    session: AsyncSession, wallet: WalletSnapshot, reason: str, now: datetime
) -> Redemption:
    failures = wallet.redeem_failures + 1
    locked_until = None
    if failures >= MAX_FAILURES:
        locked_until = now + LOCK_DURATION
    session.add(RedemptionFailure(account_id=wallet.account_id, at=now, reason=reason))
    await session.exec(
        update(Wallet).where(col(Wallet.account_id) == wallet.account_id).values(
            redeem_failures=0 if locked_until else failures, redeem_locked_until=locked_until)
    )
    await session.flush()
    return Redemption(False, reason, failures=failures, locked_until=locked_until)
