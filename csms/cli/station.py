"""`volthaus station pending|approve|show|send-after-boot`: the OCPP side of stations."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from csms.db.engine import session_factory
from csms.ocpp.admin import (
    StationNotFound,
    approve_station,
    pending_stations,
    set_send_after_boot,
    station_overview,
)
from csms.serve import open_database
from csms.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    station = subparsers.add_parser("station", help="approve stations, show their OCPP state")
    actions = station.add_subparsers(dest="station_command", metavar="ACTION", required=True)
    pending = actions.add_parser("pending", help="auto-registered stations waiting for approval")
    pending.add_argument("--site")
    pending.set_defaults(handler=run_pending)
    approve = actions.add_parser("approve", help="accept a Pending station at its next boot")
    approve.add_argument("station_id")
    approve.set_defaults(handler=run_approve)
    show = actions.add_parser("show", help="live OCPP state and connector statuses (JSON)")
    show.add_argument("station_id")
    show.set_defaults(handler=run_show)
    switch = actions.add_parser(
        "send-after-boot", help="switch what the server sends on its own after a boot"
    )
    switch.add_argument("station_id")
    switch.add_argument("state", choices=("on", "off"))
    switch.set_defaults(handler=run_switch)


def _with_session(work: Any) -> Any:
    async def go() -> Any:
        engine = await open_database(Settings())
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _unknown(error: StationNotFound) -> int:
    print(f"volthaus station: station_id: {error}", file=sys.stderr)
    return 2


def run_pending(args: argparse.Namespace) -> int:
    stations = _with_session(lambda session: pending_stations(session, args.site))
    for station in stations:
        print(f"{station.id}\t{station.site_id}\t{station.protocol}")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    try:
        was_pending = _with_session(lambda session: approve_station(session, args.station_id))
    except StationNotFound as error:
        return _unknown(error)
    print(f"approved {args.station_id}" + ("" if was_pending else " (was not pending)"))
    return 0


def run_show(args: argparse.Namespace) -> int:
    try:
        overview = _with_session(lambda session: station_overview(session, args.station_id))
    except StationNotFound as error:
        return _unknown(error)
    print(json.dumps(overview, indent=2))
    return 0


def run_switch(args: argparse.Namespace) -> int:
    enabled = args.state == "on"
    try:
        _with_session(lambda session: set_send_after_boot(session, args.station_id, enabled))
    except StationNotFound as error:
        return _unknown(error)
    print(f"{args.station_id}: send-after-boot {args.state}")
    return 0
