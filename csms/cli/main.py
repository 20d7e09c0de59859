"""The `volthaus` command: one argparse tree, each command group in its own module.

Every group module exposes `register(subparsers)`, adding its sub-commands; each sub-command sets
`handler=` (a function taking the parsed args and returning the exit code). Errors in the input
exit 2 with a message naming the field on stderr, as argparse does for bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# The command groups, in the order `volthaus --help` lists them.
COMMAND_MODULES = (
    "csms.cli.serve",
    "csms.cli.site",
    "csms.cli.price",
    "csms.cli.badge",
    "csms.cli.wallet",
    "csms.cli.station",
    "csms.cli.simulate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volthaus", description="Volthaus: prepaid backend for shared energy amenities"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
