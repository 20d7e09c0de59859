"""`volthaus station pending|approve|show|send-after-boot|boot-status|install-root|
ca-cert|reserve|reservations|cancel-reservation`: the OCPP side of stations.

Installing a root certificate, reserving and cancelling talk to a station, which only the
node holding its websocket can: they go through a node's HTTP API (`--url`, `--token` of an
operator). The rest reads and writes the database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.ocpp.admin import (
    ApprovalError,
    StationNotFound,
    approve_station,
    get_station,
    pending_stations,
    set_boot_pending,
    set_send_after_boot,
    station_overview,
)
from csms.ocpp.reservation_book import reservation_json, station_reservations


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
    reserve = actions.add_parser(
        "reserve", help="reserve a connector for a badge (ReserveNow, through a node's API)"
    )
    reserve.add_argument("station_id")
    reserve.add_argument("--badge", required=True, help="the badge's UID in hex")
    reserve.add_argument("--connector", type=int, default=0,
                         help="1.6 connectorId / 2.0.1 evseId (0, the default: any one)")
    reserve.add_argument("--for", dest="duration", help="how long: 30m, 2h, 1d")
    reserve.add_argument("--until", help="or until: ISO 8601, e.g. 2026-12-02T20:00+01:00")
    _node_arguments(reserve)
    reserve.set_defaults(handler=run_reserve)
    listing = actions.add_parser("reservations", help="the station's reservations, newest first")
    listing.add_argument("station_id")
    listing.set_defaults(handler=run_reservations)
    cancel = actions.add_parser(
        "cancel-reservation", help="cancel a reservation (CancelReservation, through a node's API)"
    )
    cancel.add_argument("station_id")
    cancel.add_argument("reservation_id", type=int)
    _node_arguments(cancel)
    cancel.set_defaults(handler=run_cancel_reservation)


def _node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="a node's HTTP address, http://HOST:8000")
    parser.add_argument("--token", required=True, help="an API token of an operator "
                                                        "(admin, owner or installer)")




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
    response = _ask_node("install-root", args,
                         f"/api/v1/stations/{quote(args.station_id, safe='')}/install-root")
    if isinstance(response, int):
        return response
    if response.status_code != 200:
        return _refusal("install-root", response)
    answer = response.json()
    print(f"{args.station_id}: InstallCertificate {answer['certificateType']}: "
          f"{answer['status']}")
    return 0 if answer["status"] == "Accepted" else 1


def run_ca_cert(args: argparse.Namespace) -> int:
    from csms.settings import Settings

    print(Settings().station_ca().authority().cert_pem, end="")
    return 0


_DURATION = re.compile(r"^(\d+)\s*(m|min|h|d)$")
_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 24 * 60}


def _fail(command: str, field: str, message: str) -> int:
    print(f"volthaus station {command}: {field}: {message}", file=sys.stderr)
    return 2


def _ask_node(command: str, args: argparse.Namespace, path: str,
              body: dict[str, Any] | None = None) -> httpx.Response | int:
    """POST to a node's API (`--url`, `--token`): the node holding the station's websocket
    reaches it. The answer, or the exit code when the node could not be asked."""
    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        return _fail(command, "--url", f"{args.url!r} is not an http(s) address")
    # The node waits up to 30 s for the station; a little longer here.
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=40,
                      headers={"Authorization": f"Bearer {args.token}"}) as client:
        try:
            return client.post(path, json=body)
        except httpx.TransportError as error:
            print(f"volthaus station {command}: --url: cannot reach {args.url} ({error})",
                  file=sys.stderr)
            return 1


def _refusal(command: str, response: httpx.Response) -> int:
    """A node's error answer (RFC 9457): 422 names the fields and 404 an unknown name (exit
    2), the rest exit 1."""
    try:
        body = response.json()
        detail = str(body.get("detail"))
        problems = [f"{p['path']}: {p['message']}" for p in body.get("problems") or ()]
    except (ValueError, KeyError, TypeError, AttributeError):
        detail, problems = response.reason_phrase, []
    if response.status_code == 422 and problems:
        for line in problems:
            print(f"volthaus station {command}: {line}", file=sys.stderr)
        return 2
    print(f"volthaus station {command}: {response.status_code} {detail}", file=sys.stderr)
    return 2 if response.status_code == 404 else 1


def _line(reservation: dict[str, Any]) -> str:
    connector = reservation["connector"] or "any"
    return (f"{reservation['id']}\tconnector {connector}\t{reservation['badge_uid']}\t"
            f"until {reservation['expires_at']}\t{reservation['answer'] or 'no answer'}\t"
            f"{reservation['state']}")


def run_reserve(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"connector": args.connector, "id_tag": args.badge}
    if (args.duration is None) == (args.until is None):
        return _fail("reserve", "--for", "give --for or --until, one of them")
    if args.duration is not None:
        match = _DURATION.match(args.duration.strip())
        if match is None:
            return _fail("reserve", "--for", f"not a duration like 30m, 2h or 1d: "
                                             f"{args.duration!r}")
        body["minutes"] = int(match.group(1)) * _MINUTES[match.group(2)]
    else:
        body["expires_at"] = args.until
    response = _ask_node("reserve", args,
                         f"/api/v1/stations/{quote(args.station_id, safe='')}/reservations",
                         body)
    if isinstance(response, int):
        return response
    if response.status_code != 201:
        return _refusal("reserve", response)
    reservation = response.json()
    print(_line(reservation))
    # Stored either way; only an Accepted reservation holds the connector.
    return 0 if reservation["answer"] == "Accepted" else 1


def run_reservations(args: argparse.Namespace) -> int:
    async def read(session: AsyncSession) -> list[dict[str, Any]]:
        await get_station(session, args.station_id)
        now = datetime.now(UTC)
        return [reservation_json(row, now)
                for row in await station_reservations(session, args.station_id)]

    try:
        rows = run_in_transaction(read)
    except StationNotFound as error:
        return _unknown(error)
    for reservation in rows:
        print(_line(reservation))
    return 0


def run_cancel_reservation(args: argparse.Namespace) -> int:
    response = _ask_node(
        "cancel-reservation", args, f"/api/v1/stations/{quote(args.station_id, safe='')}"
        f"/reservations/{args.reservation_id}/cancel")
    if isinstance(response, int):
        return response
    if response.status_code != 200:
        return _refusal("cancel-reservation", response)
    print(_line(response.json()["reservation"]))
    return 0
