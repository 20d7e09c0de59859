"""`volthaus simulate`: N simulated stations (1.6J, 2.0.1 or mixed) against a server."""

from __future__ import annotations

import argparse
import asyncio
import math
import ssl
import sys

from csms.simulator.fleet import FleetPlan, run_fleet


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run simulated OCPP stations against a server, or tap a badge at a laundry "
        "machine (tests, load, demos)",
    )
    parser.add_argument(
        "what", nargs="?", choices=("stations", "laundry"), default="stations",
        help="stations (default) or laundry: tap --id-tag at --amenity and follow the cycle",
    )
    parser.add_argument(
        "--url", default="ws://127.0.0.1:9000/ocpp", help="base URL; the station id is appended"
    )
    parser.add_argument("--stations", "-n", type=int, default=1, help="how many")
    parser.add_argument("--protocol", choices=("ocpp1.6", "ocpp2.0.1", "mixed"), default="ocpp1.6")
    parser.add_argument("--prefix", default="SIM-", help="station ids are PREFIX00000, ...")
    parser.add_argument("--password", help="Basic-auth password of every station")
    parser.add_argument("--id-tag", default="04A2B3C4", help="the badge the stations present")
    parser.add_argument("--power", type=float, default=11000, help="charging power in W")
    parser.add_argument(
        "--meter-interval", type=float, default=10, help="seconds between meter values"
    )
    parser.add_argument("--heartbeat", type=float, default=60, help="seconds between heartbeats")
    parser.add_argument("--session", type=float, default=60, help="seconds per charging session")
    parser.add_argument(
        "--charging-share",
        type=float,
        default=0.3,
        help="chance that a station charges in each period (0..1)",
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds to run")
    parser.add_argument("--cafile", help="CA to trust for wss:// URLs")
    parser.add_argument("--cert", help="client certificate (security profile 3)")
    parser.add_argument("--key", help="client certificate key")
    demo = parser.add_argument_group("one paid session on a named station (the demo site)")
    demo.add_argument("--station", help="station id (e.g. WB-A-01): one visible session")
    demo.add_argument("--time-scale", type=float, default=0.002,
                      help="real seconds per simulated second of --session")
    demo.add_argument("--api", help="HTTP API base URL, to print the bill and the wallet")
    demo.add_argument("--token", help="API token for --api (the admin token of the first start)")
    laundry = parser.add_argument_group("laundry: one cycle on a machine of a running node")
    laundry.add_argument("--amenity", default="washer-1", help="the machine (washer-1)")
    laundry.add_argument("--reader", default="reader-1", help="the reader tapped (reader-1)")
    laundry.add_argument("--site", default="lindenhof", help="the machine's site (lindenhof)")
    laundry.add_argument("--account", help="the account whose wallet to show at the end")
    laundry.add_argument("--language", choices=("de", "en"), default="de",
                         help="language of the reader's message")
    parser.set_defaults(handler=run)


def _problem(field: str, message: str) -> int:
    print(f"volthaus simulate: {field}: {message}", file=sys.stderr)
    return 2


def _demo(args: argparse.Namespace) -> int:
    from csms.charging.demo import DemoPlan, protocol_for, run_demo

    if not math.isfinite(args.time_scale) or args.time_scale < 0:
        return _problem("--time-scale", "must be zero or a positive number")
    if bool(args.api) != bool(args.token):
        return _problem("--token", "--api and --token go together")
    plan = DemoPlan(
        url=args.url, station_id=args.station, protocol=protocol_for(args.protocol),
        password=args.password, id_tag=args.id_tag, power_w=args.power,
        session_s=args.session, interval_s=args.meter_interval, time_scale=args.time_scale,
        api_url=args.api, token=args.token,
    )
    return asyncio.run(run_demo(plan, sys.stdout))


def _laundry(args: argparse.Namespace) -> int:
    from csms.simulator.laundry_demo import LaundryPlan, run_laundry_demo

    if not args.api or not args.token:
        return _problem("--api", "laundry needs --api URL and --token TOKEN")
    plan = LaundryPlan(api_url=args.api, token=args.token, site=args.site, reader=args.reader,
                       amenity=args.amenity, badge=args.id_tag, account=args.account,
                       language=args.language)
    return asyncio.run(run_laundry_demo(plan, sys.stdout))


def run(args: argparse.Namespace) -> int:
    if args.what == "laundry":
        return _laundry(args)
    if args.stations < 1:
        return _problem("--stations", "must be at least 1")
    if not args.url.startswith(("ws://", "wss://")):
        return _problem("--url", "must start with ws:// or wss://")
    for name in ("power", "meter_interval", "heartbeat", "session", "duration"):
        value = getattr(args, name)
        if not math.isfinite(value) or value <= 0:
            return _problem(f"--{name.replace('_', '-')}", "must be a positive number")
    if not 0 <= args.charging_share <= 1:
        return _problem("--charging-share", "must be between 0 and 1")
    if bool(args.cert) != bool(args.key):
        return _problem("--cert", "--cert and --key go together")
    if args.station:
        return _demo(args)
    context = None
    if args.url.startswith("wss://"):
        context = ssl.create_default_context(cafile=args.cafile)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
    plan = FleetPlan(
        url=args.url,
        count=args.stations,
        protocol=args.protocol,
        id_prefix=args.prefix,
        password=args.password,
        id_tag=args.id_tag,
        heartbeat_s=args.heartbeat,
        power_w=args.power,
        meter_interval_s=args.meter_interval,
        charge_s=args.session,
        charging_share=args.charging_share,
        duration_s=args.duration,
        ssl_context=context,
    )
    report = asyncio.run(run_fleet(plan))
    print(
        f"stations: {report.connected} connected, {report.booted} accepted, "
        f"{report.failed} failed (boot phase {report.boot_seconds:.1f} s)"
    )
    for action in sorted(report.latencies):
        count = len(report.latencies[action])
        p50 = report.percentile(0.5, action) * 1000
        p99 = report.percentile(0.99, action) * 1000
        print(f"  {action:<20} {count:>7} msgs  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    for name, count in sorted(report.errors.items()):
        print(f"  error {name}: {count}")
    return 0 if report.connected and not report.failed else 1
