"""`volthaus badge ...`: UID formats, the badge registry and desk enrolment.

`normalize` and `render` need no database. Bad input exits 2 naming the argument and stores
nothing; a reader that cannot be opened exits 1. Accounts are named by their id on their site
and badges by UID; `--site` says which site is meant when one is on several (exit 2 otherwise).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.cli.scope import ScopeError, cli_account, cli_badge_site
from csms.serve import system_clock
from rfid.enrolment import CardRefused, EnrolmentError, enrol, wait_for_card
from rfid.models import Badge
from rfid.registry import (
    RegistryError,
    block_badge,
    list_badges,
    register_badge,
    unblock_badge,
)
from rfid.uid import FORMATS, UidError, normalize, parse, render
from wallet.accounts import refs_of

T = TypeVar("T")

# Registry fields as the command line spells them.
_ARGUMENT = {
    "uid": "UID",
    "format": "--from",
    "account_id": "--account",
    "label": "--label",
    "valid_from": "--valid-from",
    "valid_until": "--valid-until",
    "max_sessions": "--max-sessions",
    "status": "UID",
}


class _BadArgument(Exception):
    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")


def register(subparsers: argparse._SubParsersAction) -> None:
    badge = subparsers.add_parser("badge", help="RFID badges: UID formats, registry, enrolment")
    actions = badge.add_subparsers(dest="badge_command", metavar="ACTION", required=True)
    formats = " | ".join(FORMATS)

    do_normalize = actions.add_parser("normalize", help="print the canonical UID of an idTag")
    do_normalize.add_argument("value", metavar="VALUE")
    do_normalize.add_argument("--from", dest="fmt", default="hex", metavar="FORMAT",
                              help=f"{formats} (default hex)")
    do_normalize.set_defaults(handler=run_normalize)

    do_render = actions.add_parser("render", help="print a UID as a station format writes it")
    do_render.add_argument("uid", metavar="UID")
    do_render.add_argument("--to", dest="fmt", required=True, metavar="FORMAT",
                           help=f"{formats} | all")
    do_render.set_defaults(handler=run_render)

    site_help = "the site, when the account or badge is on several"
    do_list = actions.add_parser(
        "list", help="list badges (the account column reads SITE/ACCOUNT when several sites "
        "are listed)")
    do_list.add_argument("--site")
    do_list.add_argument("--account")
    do_list.set_defaults(handler=run_list)

    do_register = actions.add_parser("register", help="register a MIFARE Classic badge")
    do_register.add_argument("uid", metavar="UID")
    do_register.add_argument("--account", required=True)
    do_register.add_argument("--site", help=site_help)
    do_register.add_argument("--from", dest="fmt", default="hex", metavar="FORMAT",
                             help="format UID is written in (default hex)")
    do_register.add_argument("--label")
    do_register.add_argument("--valid-from", metavar="YYYY-MM-DD")
    do_register.add_argument("--valid-until", metavar="YYYY-MM-DD")
    do_register.add_argument("--max-sessions", type=int, default=1)
    do_register.add_argument("--foreign", action="store_true",
                             help="an existing card (e.g. building access), not one we issued")
    do_register.set_defaults(handler=run_register)

    do_block = actions.add_parser("block", help="block a badge (at once, also in local lists)")
    do_block.add_argument("uid", metavar="UID")
    do_block.add_argument("--lost", action="store_true", help="the badge was reported lost")
    do_block.add_argument("--site", help=site_help)
    do_block.set_defaults(handler=run_block)

    do_unblock = actions.add_parser("unblock", help="let a blocked or found badge work again")
    do_unblock.add_argument("uid", metavar="UID")
    do_unblock.add_argument("--site", help=site_help)
    do_unblock.set_defaults(handler=run_unblock)

    do_enroll = actions.add_parser("enroll", help="read a card at a desk reader and register it")
    do_enroll.add_argument("--account", required=True)
    do_enroll.add_argument("--site", help=site_help)
    do_enroll.add_argument("--device", default="usb",
                           help="nfcpy reader path: usb, usb:VID:PID, tty:USB0:pn532 (default usb)")
    do_enroll.add_argument("--label")
    do_enroll.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    do_enroll.add_argument("--foreign", action="store_true")
    do_enroll.set_defaults(handler=run_enroll)


def _fail(message: str, code: int = 2) -> int:
    print(f"volthaus badge: {message}", file=sys.stderr)
    return code


def run_normalize(args: argparse.Namespace) -> int:
    try:
        print(normalize(args.value, args.fmt))
    except UidError as error:
        return _fail(f"{'--from' if error.field == 'format' else 'VALUE'}: {error}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    try:
        uid = parse(args.uid, "hex")
    except UidError as error:
        return _fail(f"UID: {error}")
    if args.fmt == "all":
        for fmt in FORMATS:
            print(f"{fmt:<13} {render(uid, fmt)}")
        return 0
    try:
        print(render(uid, args.fmt))
    except UidError as error:
        return _fail(f"--to: {error}")
    return 0


def _date(value: str | None, argument: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _BadArgument(argument, f"{value!r} is not a date (YYYY-MM-DD)") from None




def _registry_call(work: Callable[[AsyncSession], Awaitable[Badge]], done: str) -> int:
    async def with_ref(session: AsyncSession) -> tuple[Badge, str]:
        badge = await work(session)
        return badge, (await refs_of(session, [badge.account_id]))[badge.account_id]

    try:
        badge, ref = run_in_transaction(with_ref)
    except RegistryError as error:
        return _fail(f"{_ARGUMENT.get(error.field, error.field)}: {error.message}")
    except (_BadArgument, ScopeError) as error:
        return _fail(str(error))
    print(f"{done} {badge.uid} (account {ref}, {badge.status})")
    return 0


def run_register(args: argparse.Namespace) -> int:
    try:
        valid_from = _date(args.valid_from, "--valid-from")
        valid_until = _date(args.valid_until, "--valid-until")
    except _BadArgument as error:
        return _fail(str(error))

    async def work(session: AsyncSession) -> Badge:
        account = await cli_account(session, args.account, args.site, "--account")
        return await register_badge(
            session, uid=args.uid, fmt=args.fmt, account_id=account.id, now=system_clock(),
            label=args.label, valid_from=valid_from, valid_until=valid_until,
            origin="foreign" if args.foreign else "issued", max_sessions=args.max_sessions,
        )

    return _registry_call(work, "registered")


def run_block(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Badge:
        site = await cli_badge_site(session, args.uid, args.site)
        return await block_badge(session, site, args.uid, now=system_clock(), lost=args.lost)

    return _registry_call(work, "blocked")


def run_unblock(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Badge:
        site = await cli_badge_site(session, args.uid, args.site)
        return await unblock_badge(session, site, args.uid, now=system_clock())

    return _registry_call(work, "unblocked")


def run_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> tuple[list[Badge], dict[str, str]]:
        account_id = None
        if args.account is not None:
            account_id = (await cli_account(session, args.account, args.site, "--account")).id
        badges = list(await list_badges(session, site_id=args.site, account_id=account_id))
        return badges, await refs_of(session, [b.account_id for b in badges])

    try:
        badges, refs = run_in_transaction(work)
    except ScopeError as error:
        return _fail(str(error))
    several = len({b.site_id for b in badges}) > 1
    for badge in badges:
        validity = (f"{badge.valid_from or ''}..{badge.valid_until or ''}"
                    if badge.valid_from or badge.valid_until else "-")
        ref = refs[badge.account_id]
        print("\t".join((badge.uid, f"{badge.site_id}/{ref}" if several else ref, badge.status,
                         validity, badge.card_type or "-", badge.label or "")))
    return 0


def run_enroll(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Badge:
        # a wrong account fails before the wait
        account = await cli_account(session, args.account, args.site, "--account")
        print(f"present the card to the reader at {args.device} ...", file=sys.stderr)
        card = await wait_for_card(args.device, timeout_s=args.timeout)
        print(f"read {card.describe()}", file=sys.stderr)
        return await enrol(
            session, card, account_id=account.id, now=system_clock(), label=args.label,
            origin="foreign" if args.foreign else "issued",
        )

    try:
        return _registry_call(work, "enrolled")
    except CardRefused as error:
        return _fail(str(error))
    except EnrolmentError as error:
        return _fail(str(error), code=1)
