"""`volthaus meter ...`: apartment meters for installers at a desk.

`meter exchange METER --at TIME --old-wh N --new-wh N` records that a meter was swapped (or
reset): billing continues across it. Bad input exits 2 naming the argument and records nothing.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.serve import system_clock
from meters.models import MeterExchange
from meters.readings import ExchangeError, meter_state, record_exchange

# record_exchange's fields as the command line spells them.
_ARGUMENT = {
    "meter_id": "METER",
    "at": "--at",
    "old_final_wh": "--old-wh",
    "new_initial_wh": "--new-wh",
    "recorded_by": "--staff",
}


class _BadArgument(Exception):
    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")


def register(subparsers: argparse._SubParsersAction) -> None:
    meter = subparsers.add_parser("meter", help="apartment meters: exchanges")
    actions = meter.add_subparsers(dest="meter_command", metavar="ACTION", required=True)
    exchange = actions.add_parser(
        "exchange", help="record a meter exchange (or reset): billing continues across it")
    exchange.add_argument("meter_id", metavar="METER", help="the meter's id (m-a-01)")
    exchange.add_argument("--at", required=True, metavar="TIME",
                          help="when, ISO 8601 with its zone (2026-12-02T10:30:00+01:00)")
    exchange.add_argument("--old-wh", required=True, metavar="WH",
                          help="the old meter's final register, in Wh")
    exchange.add_argument("--new-wh", required=True, metavar="WH",
                          help="the new meter's register when fitted, in Wh")
    exchange.add_argument("--staff", help="who records it (default: the system user)")
    exchange.set_defaults(handler=run_exchange)


def _fail(message: str) -> int:
    print(f"volthaus meter: {message}", file=sys.stderr)
    return 2


def _time(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _BadArgument("--at", f"{value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise _BadArgument("--at", f"{value!r} has no time zone (add Z or +01:00)")
    return at


def _wh(value: str, argument: str) -> int:
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise _BadArgument(argument, f"{value!r} is not a whole number of Wh") from None


def _who(staff: str | None) -> str:
    if staff:
        return f"cli:{staff}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def run_exchange(args: argparse.Namespace) -> int:
    try:
        at = _time(args.at)
        old_wh = _wh(args.old_wh, "--old-wh")
        new_wh = _wh(args.new_wh, "--new-wh")
    except _BadArgument as error:
        return _fail(str(error))

    async def work(session: AsyncSession) -> tuple[MeterExchange, int]:
        exchange = await record_exchange(session, args.meter_id, at, old_wh, new_wh,
                                         _who(args.staff), now=system_clock())
        return exchange, (await meter_state(session, args.meter_id, lock=False)).offset_wh

    try:
        exchange, offset = run_in_transaction(work)
    except ExchangeError as error:
        for field, message in error.problems:
            print(f"volthaus meter: {_ARGUMENT.get(field, field)}: {message}", file=sys.stderr)
        return 2
    print(f"recorded the exchange of {exchange.meter_id} at {exchange.at.isoformat()}: "
          f"old meter ended at {exchange.old_final_wh} Wh, new one started at "
          f"{exchange.new_initial_wh} Wh; billing adds {offset} Wh to the new register")
    return 0
