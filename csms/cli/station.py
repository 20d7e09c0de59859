"""`volthaus station pending|approve|show|send-after-boot|boot-status`: the OCPP side of
stations."""

from __future__ import annotations

import argparse
import json
import sys

from csms.cli.database import run_in_transaction
from csms.ocpp.admin import (
    ApprovalError,
    StationNotFound,
    approve_station,
    pending_stations,
    set_boot_pending,
    set_send_after_boot,
    station_overview,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    station = subparsers.add_parser("station", help="approve stations, show their OCPP state")
    actions = station.add_subparsers(dest="station_command", metavar="ACTION", required=True)
    pending = actions.add_parser("pending", help="auto-registered stations waiting for approval")
    pending.add_argument("--site")
    pending.set_defaults(handler=run_pending)
    approve = actions.add_parser("approve", help="accept a Pending station at its next boot")
    approve.add_argument("station_id")
    approve.add_argument(
        "--tariff",
        help="the site's tariff it bills with (required for a station without one: an "
        "auto-registered station)",
    )
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
    boot = actions.add_parser(
        "boot-status", help="answer the station's next boots Pending (re-commissioning) or "
        "Accepted again")
    boot.add_argument("station_id")
    boot.add_argument("status", choices=("Pending", "Accepted"))
    boot.set_defaults(handler=run_boot_status)




def _unknown(error: StationNotFound) -> int:
    print(f"volthaus station: station_id: {error}", file=sys.stderr)
    return 2


def run_pending(args: argparse.Namespace) -> int:
    stations = run_in_transaction(lambda session: pending_stations(session, args.site))
    for station in stations:
        print(f"{station.id}\t{station.site_id}\t{station.protocol}\t{station.tariff_id or '-'}")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    try:
        was_pending = run_in_transaction(
            lambda session: approve_station(session, args.station_id, args.tariff)
        )
    except StationNotFound as error:
        return _unknown(error)
    except ApprovalError as error:
        print(f"volthaus station approve: {error}", file=sys.stderr)
        return 2
    print(f"approved {args.station_id}" + ("" if was_pending else " (was not pending)"))
    return 0


def run_show(args: argparse.Namespace) -> int:
    try:
        overview = run_in_transaction(lambda session: station_overview(session, args.station_id))
    except StationNotFound as error:
        return _unknown(error)
    print(json.dumps(overview, indent=2))
    return 0


def run_switch(args: argparse.Namespace) -> int:
    enabled = args.state == "on"
    try:
        run_in_transaction(lambda session: set_send_after_boot(session, args.station_id, enabled))
    except StationNotFound as error:
        return _unknown(error)
    print(f"{args.station_id}: send-after-boot {args.state}")
    return 0


def run_boot_status(args: argparse.Namespace) -> int:
    pending = args.status == "Pending"
    try:
        run_in_transaction(lambda session: set_boot_pending(session, args.station_id, pending))
    except StationNotFound as error:
        return _unknown(error)
    print(f"{args.station_id}: next boot answered {args.status}")
    return 0
