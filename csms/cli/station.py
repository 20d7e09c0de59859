"""`volthaus station pending|approve|show|send-after-boot|boot-status|install-root|
ca-cert`: the OCPP side of stations."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import quote

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
    # A station is reached through the node holding its websocket: this command asks a node
    # over its HTTP API (where the change is audited), like `volthaus reader run`.
    install = actions.add_parser(
        "install-root",
        help="send InstallCertificate with the CSMS root certificate to a connected station",
    )
    install.add_argument("station_id")
    install.add_argument("--url", required=True, help="a node's HTTP address, http://HOST:8000")
    install.add_argument("--token", required=True, help="an API token of role installer or admin")
    install.set_defaults(handler=run_install_root)
    ca_cert = actions.add_parser(
        "ca-cert", help="print the station CA's certificate (PEM), made first if there is none"
    )
    ca_cert.set_defaults(handler=run_ca_cert)




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


def run_install_root(args: argparse.Namespace) -> int:
    import httpx

    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        print(f"volthaus station install-root: url: {args.url!r} is not an http(s) address",
              file=sys.stderr)
        return 2

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(
                f"{url}/api/v1/stations/{quote(args.station_id, safe='')}/install-root",
                headers={"Authorization": f"Bearer {args.token}"},
            )

    try:
        response = asyncio.run(go())
    except httpx.TransportError as error:
        print(f"volthaus station install-root: url: cannot reach {url} ({error})",
              file=sys.stderr)
        return 1
    if response.status_code == 404:
        print(f"volthaus station install-root: station_id: {args.station_id!r} is unknown",
              file=sys.stderr)
        return 2
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        print(f"volthaus station install-root: {response.status_code}: {detail}",
              file=sys.stderr)
        return 1
    answer = response.json()
    print(f"{args.station_id}: InstallCertificate {answer['certificateType']}: "
          f"{answer['status']}")
    return 0 if answer["status"] == "Accepted" else 1


def run_ca_cert(args: argparse.Namespace) -> int:
    from csms.settings import Settings

    print(Settings().station_ca().authority().cert_pem, end="")
    return 0
