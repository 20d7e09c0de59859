"""`volthaus badge ...`: UID formats, the badge registry and desk enrolment.

`normalize` and `render` need no database. Bad input exits 2 naming the argument and stores
nothing; a reader that cannot be opened exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.serve import system_clock
from rfid.enrolment import CardRefused, EnrolmentError, enrol, wait_for_card
from rfid.models import Badge
from rfid.registry import (
    RegistryError,
    account_site,
    block_badge,
    list_badges,
    register_badge,
    unblock_badge,
)
from rfid.uid import FORMATS, UidError, normalize, parse, render

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

    do_list = actions.add_parser("list", help="list badges")
    do_list.add_argument("--site")
    do_list.add_argument("--account")
    do_list.set_defaults(handler=run_list)

    do_register = actions.add_parser("register", help="register a MIFARE Classic badge")
    do_register.add_argument("uid", metavar="UID")
    do_register.add_argument("--account", required=True)
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
    do_block.set_defaults(handler=run_block)

    do_unblock = actions.add_parser("unblock", help="let a blocked or found badge work again")
    do_unblock.add_argument("uid", metavar="UID")
    do_unblock.set_defaults(handler=run_unblock)

    do_enroll = actions.add_parser("enroll", help="read a card at a desk reader and register it")
    do_enroll.add_argument("--account", required=True)
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
    try:
        badge = run_in_transaction(work)
    except RegistryError as error:
        return _fail(f"{_ARGUMENT.get(error.field, error.field)}: {error.message}")
    except _BadArgument as error:
        return _fail(str(error))
    print(f"{done} {badge.uid} (account {badge.account_id}, {badge.status})")
    return 0


def run_register(args: argparse.Namespace) -> int:
    try:
        valid_from = _date(args.valid_from, "--valid-from")
        valid_until = _date(args.valid_until, "--valid-until")
    except _BadArgument as error:
        return _fail(str(error))

    async def work(session: AsyncSession) -> Badge:
        return await register_badge(
            session, uid=args.uid, fmt=args.fmt, account_id=args.account, now=system_clock(),
            label=args.label, valid_from=valid_from, valid_until=valid_until,
            origin="foreign" if args.foreign else "issued", max_sessions=args.max_sessions,
        )

    return _registry_call(work, "registered")


def run_block(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Badge:
        return await block_badge(session, args.uid, now=system_clock(), lost=args.lost)

    return _registry_call(work, "blocked")


def run_unblock(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Badge:
        return await unblock_badge(session, args.uid, now=system_clock())

    return _registry_call(work, "unblocked")


def run_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[Badge]:
        return list(await list_badges(session, site_id=args.site, account_id=args.account))

    for badge in run_in_transaction(work):
        validity = (f"{badge.valid_from or ''}..{badge.valid_until or ''}"
                    if badge.valid_from or badge.valid_until else "-")
        print("\t".join((badge.uid, badge.account_id, badge.status, validity,
                         badge.card_type or "-", badge.label or "")))
    return 0


def run_enroll(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> Badge:
        await account_site(session, args.account)  # a wrong account fails before the wait
        print(f"present the card to the reader at {args.device} ...", file=sys.stderr)
        card = await wait_for_card(args.device, timeout_s=args.timeout)
        print(f"read {card.describe()}", file=sys.stderr)
        return await enrol(
            session, card, account_id=args.account, now=system_clock(), label=args.label,
            origin="foreign" if args.foreign else "issued",
        )

    try:
        return _registry_call(work, "enrolled")
    except CardRefused as error:
        return _fail(str(error))
    except EnrolmentError as error:
        return _fail(str(error), code=1)
