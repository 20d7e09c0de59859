"""`volthaus load limit|limits|lift`: the grid operator's temporary limits (§14a EnWG)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.load.grid_limits import (
    GridLimitProblem,
    LimitRequest,
    lift_grid_limit,
    set_grid_limit,
    site_limits,
)

_DURATION = re.compile(r"^(\d+)\s*(m|min|h|d)$")


def register(subparsers: argparse._SubParsersAction) -> None:
    load = subparsers.add_parser("load", help="load management: the grid operator's limits")
    actions = load.add_subparsers(dest="load_command", metavar="ACTION", required=True)
    limit = actions.add_parser("limit", help="set a temporary limit for a site or a station")
    limit.add_argument("--site", required=True)
    limit.add_argument("--station", help="one station (default: the site's connection)")
    limit.add_argument("--kw", help="the limit in kW, e.g. 4.2")
    limit.add_argument("--amps", help="or in A per phase")
    limit.add_argument("--until", help="ISO 8601 end, e.g. 2026-12-02T20:00+01:00")
    limit.add_argument("--for", dest="duration", help="or a duration: 90m, 2h, 1d")
    limit.add_argument("--reason")
    limit.set_defaults(handler=run_limit)
    listing = actions.add_parser("limits", help="the site's limits, newest first")
    listing.add_argument("--site", required=True)
    listing.set_defaults(handler=run_limits)
    lift = actions.add_parser("lift", help="lift a limit now")
    lift.add_argument("limit_id", type=int)
    lift.set_defaults(handler=run_lift)


def _fail(field: str, message: str) -> int:
    print(f"volthaus load: --{field}: {message}", file=sys.stderr)
    return 2


def _end(args: argparse.Namespace, now: datetime) -> datetime:
    if (args.until is None) == (args.duration is None):
        raise GridLimitProblem("until", "give --until or --for, one of them")
    if args.duration is not None:
        match = _DURATION.match(args.duration.strip())
        if match is None:
            raise GridLimitProblem("for", f"not a duration like 90m, 2h or 1d: {args.duration!r}")
        number, unit = int(match.group(1)), match.group(2)
        return now + {"m": timedelta(minutes=number), "min": timedelta(minutes=number),
                      "h": timedelta(hours=number), "d": timedelta(days=number)}[unit]
    try:
        end = datetime.fromisoformat(args.until)
    except ValueError:
        raise GridLimitProblem("until", f"not an ISO 8601 time: {args.until!r}") from None
    if end.tzinfo is None:
        raise GridLimitProblem("until", "give the time zone (e.g. +01:00 or Z)")
    return end


def _amount(text: str | None, flag: str) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise GridLimitProblem(flag, f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise GridLimitProblem(flag, "must be zero or more")
    return value


def run_limit(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        kw = _amount(args.kw, "kw")
        request = LimitRequest(
            site_id=args.site, station_id=args.station, ends_at=_end(args, now),
            limit_a=_amount(args.amps, "amps"), reason=args.reason,
            limit_w=int(kw * 1000) if kw is not None else None)

        async def work(db: AsyncSession) -> tuple[int | None, Decimal]:
            row = await set_grid_limit(db, request, now=now, actor="cli")
            return row.id, row.limit_a

        limit_id, amps = run_in_transaction(work)
    except GridLimitProblem as problem:
        field = {"limit": "kw", "station": "station", "site": "site"}.get(problem.field,
                                                                          problem.field)
        return _fail(field, problem.message)
    print(f"grid limit {limit_id}: {amps} A per phase until {request.ends_at.isoformat()}")
    return 0


def run_limits(args: argparse.Namespace) -> int:
    rows = run_in_transaction(lambda db: site_limits(db, args.site))
    for row in rows:
        state = "lifted" if row.lifted_at else "active"
        print(f"{row.id}\t{row.station_id or '(site)'}\t{row.limit_a} A\t"
              f"{row.ends_at.isoformat()}\t{state}\t{row.reason or ''}")
    return 0


def run_lift(args: argparse.Namespace) -> int:
    try:
        run_in_transaction(lambda db: lift_grid_limit(db, args.limit_id, None,
                                                      datetime.now(UTC)))
    except GridLimitProblem as problem:
        return _fail("limit_id", problem.message)
    print(f"grid limit {args.limit_id} lifted")
    return 0
