"""`volthaus wallet ...`: the prepaid wallet for staff at a desk.

show, ledger, topup (cash with receipt number), correct, emergency, policy show|set|patch,
vouchers create|redeem, alerts deliver. Bad input exits 2 naming the argument and changes
nothing; a refusal by the credit rules or a voucher refusal exits 1. ACCOUNT is the account's id
on its site; `--site` names the site when that id is on several (exit 2 otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.cli.scope import ScopeError, cli_account
from csms.documents import DocumentError, read_document
from csms.serve import system_clock
from csms.settings import Settings
from csms.wallet_jobs import alert_channels
from wallet.credit import CreditPolicy, PolicyInvalid, whole_policy
from wallet.errors import CreditRefused, InvalidInput, InvalidInputs, NotFound, WalletError
from wallet.notify import deliver_pending
from wallet.service import (
    LedgerPage,
    WalletView,
    activate_emergency_credit,
    correct,
    get_policy,
    ledger_page,
    patch_policy,
    set_policy,
    top_up_cash,
    wallet_view,
)
from wallet.texts import format_money
from wallet.vouchers import Redemption, create_batch, redeem_voucher

T = TypeVar("T")

# Wallet field names as the command line spells them.
_ARGUMENT = {
    "amount": "AMOUNT", "reference": "--receipt", "account_id": "ACCOUNT", "reason": "--reason",
    "staff": "--staff", "key": "--key", "value": "--value", "count": "--count",
    "expires_at": "--expires", "site_id": "--site", "limit": "--limit",
}


class _BadArgument(Exception):
    pass


SITE_HELP = "the account's site, when its id is on several sites"


def register(subparsers: argparse._SubParsersAction) -> None:
    wallet = subparsers.add_parser("wallet", help="prepaid wallets: balance, top-ups, vouchers")
    actions = wallet.add_subparsers(dest="wallet_command", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="balance, holds, credit and available")
    show.add_argument("account", metavar="ACCOUNT")
    show.add_argument("--site", help=SITE_HELP)
    show.set_defaults(handler=run_show)

    ledger = actions.add_parser("ledger", help="the wallet's ledger lines, newest first")
    ledger.add_argument("account", metavar="ACCOUNT")
    ledger.add_argument("--site", help=SITE_HELP)
    ledger.add_argument("--limit", type=int, default=20)
    ledger.add_argument("--before", type=int, help="next page: the id printed last")
    ledger.set_defaults(handler=run_ledger)

    topup = actions.add_parser("topup", help="cash paid at the desk")
    topup.add_argument("account", metavar="ACCOUNT")
    topup.add_argument("--site", help=SITE_HELP)
    topup.add_argument("amount", metavar="AMOUNT", help='decimal, e.g. "20.00"')
    topup.add_argument("--receipt", required=True, help="receipt number (once per receipt)")
    topup.add_argument("--staff", required=True, help="who took the money")
    topup.set_defaults(handler=run_topup)

    fix = actions.add_parser("correct", help="a correction entry (negative AMOUNT debits)")
    fix.add_argument("account", metavar="ACCOUNT")
    fix.add_argument("--site", help=SITE_HELP)
    fix.add_argument("amount", metavar="AMOUNT")
    fix.add_argument("--reason", required=True)
    fix.add_argument("--staff", required=True)
    fix.add_argument("--key", required=True, help="unique per correction, e.g. a ticket id")
    fix.set_defaults(handler=run_correct)

    emergency = actions.add_parser("emergency", help="switch on the account's emergency credit")
    emergency.add_argument("account", metavar="ACCOUNT")
    emergency.add_argument("--site", help=SITE_HELP)
    emergency.set_defaults(handler=run_emergency)

    policy = actions.add_parser("policy", help="credit policies")
    policy_actions = policy.add_subparsers(dest="policy_command", metavar="ACTION",
                                           required=True)
    policy_show = policy_actions.add_parser("show", help="print the policy as JSON")
    policy_show.add_argument("account", metavar="ACCOUNT")
    policy_show.add_argument("--site", help=SITE_HELP)
    policy_show.set_defaults(handler=run_policy_show)
    policy_set = policy_actions.add_parser(
        "set", help="replace the policy from a JSON/YAML file naming every field")
    policy_set.add_argument("account", metavar="ACCOUNT")
    policy_set.add_argument("--site", help=SITE_HELP)
    policy_set.add_argument("file", metavar="FILE")
    policy_set.add_argument("--staff")
    policy_set.set_defaults(handler=run_policy_set, whole=True)
    policy_patch = policy_actions.add_parser(
        "patch", help="change only the fields a JSON/YAML file names")
    policy_patch.add_argument("account", metavar="ACCOUNT")
    policy_patch.add_argument("--site", help=SITE_HELP)
    policy_patch.add_argument("file", metavar="FILE")
    policy_patch.add_argument("--staff")
    policy_patch.set_defaults(handler=run_policy_set, whole=False)

    vouchers = actions.add_parser("vouchers", help="voucher codes")
    voucher_actions = vouchers.add_subparsers(dest="voucher_command", metavar="ACTION",
                                              required=True)
    create = voucher_actions.add_parser("create", help="a batch; prints the codes once")
    create.add_argument("--site", required=True)
    create.add_argument("--value", required=True)
    create.add_argument("--count", type=int, required=True)
    create.add_argument("--expires", required=True, help="YYYY-MM-DD (end of that day, UTC)")
    create.add_argument("--reference", required=True, help="batch reference (once per batch)")
    create.add_argument("--staff")
    create.set_defaults(handler=run_vouchers_create)
    redeem = voucher_actions.add_parser("redeem", help="redeem a code onto an account")
    redeem.add_argument("account", metavar="ACCOUNT")
    redeem.add_argument("--site", help=SITE_HELP)
    redeem.add_argument("code", metavar="CODE")
    redeem.set_defaults(handler=run_vouchers_redeem)

    alerts = actions.add_parser("alerts", help="deliver pending low-balance alerts")
    alerts.add_argument("--limit", type=int, default=100)
    alerts.set_defaults(handler=run_alerts)


def _fail(message: str, code: int = 2) -> int:
    print(f"volthaus wallet: {message}", file=sys.stderr)
    return code


def _amount(text: str, argument: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _BadArgument(f"{argument}: {text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise _BadArgument(f"{argument}: {text!r} is not a decimal amount")
    return value


def _call(work: Callable[[AsyncSession], Awaitable[T]]) -> tuple[T | None, int]:
    try:
        return run_in_transaction(work), 0
    except (_BadArgument, ScopeError) as error:
        return None, _fail(str(error))
    except PolicyInvalid as error:
        for path, message in error.errors:
            print(f"volthaus wallet: {path}: {message}", file=sys.stderr)
        return None, 2
    except InvalidInputs as error:
        for field, message in error.errors:
            print(f"volthaus wallet: {_ARGUMENT.get(field, field)}: {message}", file=sys.stderr)
        return None, 2
    except (InvalidInput, NotFound) as error:
        field = _ARGUMENT.get(error.field or "", error.field or "input")
        return None, _fail(f"{field}: {error.message}")
    except CreditRefused as error:
        return None, _fail(f"refused ({error.reason}): {error.message}", 1)
    except WalletError as error:
        return None, _fail(f"{error.code}: {error}", 1)


async def _account(session: AsyncSession, args: argparse.Namespace) -> str:
    """The internal key of the account the command names (ACCOUNT, --site)."""
    return (await cli_account(session, args.account, args.site)).id


def _money(amount: Decimal, currency: str) -> str:
    return format_money(amount, currency, "en")


def run_show(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> WalletView:
        return await wallet_view(session, await _account(session, args), system_clock())

    view, code = _call(work)
    if view is None:
        return code
    for label, value in (("balance", view.balance), ("holds", view.holds),
                         ("credit", view.credit), ("available", view.available)):
        print(f"{label:<10} {_money(value, view.currency)}")
    print(f"{'mode':<10} {view.mode}{' (emergency credit on)' if view.emergency_active else ''}")
    return 0


def run_ledger(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> LedgerPage:
        return await ledger_page(session, await _account(session, args), limit=args.limit,
                                 before=args.before)

    page, code = _call(work)
    if page is None:
        return code
    for line in page.lines:
        print(f"{line.posting_id:>8}  {line.at:%Y-%m-%d %H:%M}  {line.kind:<12} "
              f"{line.amount:>12}  {line.description or ''}")
    if page.next_before is not None:
        print(f"more: --before {page.next_before}")
    return 0


def run_topup(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> str:
        result = await top_up_cash(session, account_id=await _account(session, args),
                                   amount=args.amount, receipt=args.receipt,
                                   staff=args.staff, at=system_clock())
        done = "already booked" if result.entry.replayed else "topped up"
        return f"{done}: receipt {args.receipt}, credited {result.credited}, " \
               f"debt recovered {result.debt_recovered}, balance {result.balance}"

    message, code = _call(work)
    if message is not None:
        print(message)
    return code


def run_correct(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> str:
        entry = await correct(session, account_id=await _account(session, args),
                              amount=_amount(args.amount, "AMOUNT"), reason=args.reason,
                              staff=args.staff, key=f"correction:{args.key}", at=system_clock())
        return f"{'already booked' if entry.replayed else 'corrected'}: entry {entry.id}"

    message, code = _call(work)
    if message is not None:
        print(message)
    return code


def run_emergency(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> WalletView:
        return await activate_emergency_credit(session, await _account(session, args),
                                               at=system_clock())

    view, code = _call(work)
    if view is not None:
        print(f"emergency credit on: credit {view.credit}, available {view.available}")
    return code


def run_policy_show(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> CreditPolicy:
        return await get_policy(session, await _account(session, args))

    policy, code = _call(work)
    if policy is not None:
        print(json.dumps(policy.to_document(), indent=2))
    return code


def run_policy_set(args: argparse.Namespace) -> int:
    try:
        document = read_document(Path(args.file))
    except (DocumentError, OSError) as error:
        return _fail(f"FILE: {error}")
    async def work(session: AsyncSession) -> CreditPolicy:
        account = await _account(session, args)
        if args.whole:
            return await set_policy(session, account, whole_policy(document), staff=args.staff,
                                    at=system_clock())
        return await patch_policy(session, account, document, staff=args.staff,
                                  at=system_clock())

    policy, code = _call(work)
    if policy is not None:
        print(json.dumps(policy.to_document(), indent=2))
    return code


def run_vouchers_create(args: argparse.Namespace) -> int:
    try:
        day = datetime.strptime(args.expires, "%Y-%m-%d").date()
    except ValueError:
        return _fail(f"--expires: {args.expires!r} is not a date (YYYY-MM-DD)")
    expires = datetime.combine(day, time(23, 59, 59), tzinfo=UTC)

    async def work(session: AsyncSession) -> list[str]:
        batch = await create_batch(
            session, site_id=args.site, value=args.value, count=args.count,
            expires_at=expires, key=f"batch:{args.site}:{args.reference}", staff=args.staff,
            at=system_clock(),
        )
        if batch.codes is None:
            raise _BadArgument(f"--reference: batch {args.reference!r} exists already "
                               "(its codes were printed when it was created)")
        return [f"{code}  {batch.value} {args.site} until {day}" for code in batch.codes]

    lines, code = _call(work)
    for line in lines or []:
        print(line)
    return code


def run_vouchers_redeem(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Redemption:
        return await redeem_voucher(session, account_id=await _account(session, args),
                                    code=args.code, at=system_clock())

    result, code = _call(work)
    if result is None:
        return code
    if not result.ok:
        until = f", locked until {result.locked_until:%H:%M} UTC" if result.locked_until else ""
        return _fail(f"CODE: refused ({result.reason}; {result.failures} failures{until})", 1)
    print(f"{result.reason}: {result.amount}")
    return 0


def run_alerts(args: argparse.Namespace) -> int:
    notifiers, households_only = alert_channels(Settings())
    sent, code = _call(lambda session: deliver_pending(
        session, notifiers, now=system_clock, limit=args.limit,
        household_webhooks_only=households_only))
    if sent is not None:
        print(f"delivered {sent} alert(s)")
    return code
