"""`volthaus price TARIFF USAGE`: rate a usage document with a tariff and print the bill.

Files are YAML or JSON, read by `csms.documents` with numbers kept as their decimal text, so no
price ever passes through a binary float. Invalid input exits 2 with every problem on stderr,
each naming the file and field, and prints nothing on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csms.documents import DocumentError, read_document
from pricing import TariffError, bill_to_json, cost_curve, explain, load_tariff, load_usage, rate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "price",
        help="rate a usage document with a tariff and print the bill",
        description="Rate USAGE (samples of one session) with TARIFF and print the bill as JSON.",
    )
    parser.add_argument("tariff", type=Path, metavar="TARIFF", help="tariff file (YAML or JSON)")
    parser.add_argument("usage", type=Path, metavar="USAGE", help="usage file (YAML or JSON)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--explain", action="store_true",
                        help="print the bill as a table a resident can check by hand")
    output.add_argument("--curve", choices=("time", "energy"),
                        help="print CSV of cost against minutes (time) or kWh (energy) of the "
                             "session's prefixes, for a price preview plot")
    parser.add_argument("--step", type=int, default=None,
                        help="curve step: minutes for time (default 1), Wh for energy "
                             "(default 100)")
    parser.set_defaults(handler=run_price)


def _fail(messages: list[str]) -> int:
    for message in messages:
        print(f"volthaus price: {message}", file=sys.stderr)
    return 2


def run_price(args: argparse.Namespace) -> int:
    messages: list[str] = []
    tariff_doc = usage_doc = None
    for label, path in (("tariff", args.tariff), ("usage", args.usage)):
        try:
            document = read_document(path)
        except DocumentError as error:
            messages.append(str(error))
            continue
        if label == "tariff":
            tariff_doc = document
        else:
            usage_doc = document
    tariff = usage = None
    if tariff_doc is not None:
        try:
            tariff = load_tariff(tariff_doc)
        except TariffError as error:
            messages.extend(f"{args.tariff}: {problem}" for problem in error.problems)
    if usage_doc is not None:
        try:
            usage = load_usage(usage_doc)
        except TariffError as error:
            messages.extend(f"{args.usage}: {problem}" for problem in error.problems)
    if args.step is not None and args.step < 1:
        messages.append(f"--step: must be >= 1, got {args.step}")
    if messages or tariff is None or usage is None:
        return _fail(messages)

    if args.curve:
        points = cost_curve(tariff, usage, args.curve, args.step)
        axis = "minutes" if args.curve == "time" else "kwh"
        lines = [f"{axis},at,net,gross"]
        lines.extend(f"{p.x.normalize():f},{p.at.isoformat()},{p.net},{p.gross}" for p in points)
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    bill = rate(tariff, usage)
    if args.explain:
        sys.stdout.write(explain(bill))
    else:
        sys.stdout.write(json.dumps(bill_to_json(bill), indent=2) + "\n")
    return 0
