"""The `volthaus` command: one argparse tree, each command group in its own module.

Every group module exposes `register(subparsers)`, adding its sub-commands; each sub-command sets
`handler=` (a function taking the parsed args and returning the exit code). Errors in the input
exit 2 with a message naming the field on stderr, as argparse does for bad usage. Commands that
change something leave a row in the audit log (`csms.cli.audit`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from csms.cli.audit import pending_action, run_audited

# The command groups, in the order `volthaus --help` lists them.
COMMAND_MODULES = (
    "csms.cli.serve",
    "csms.cli.cluster",
    "csms.cli.site",
    "csms.cli.price",
    "csms.cli.badge",
    "csms.cli.wallet",
    "csms.cli.station",
    "csms.cli.meter",
    "csms.cli.load",
    "csms.cli.simulate",
    "csms.cli.reader",
    "csms.cli.user",
)


# Which module registers each top-level command, so that `volthaus price` does not pay for
# importing the web stack: a named command loads only its own module.
COMMAND_OWNERS = {
    "serve": "csms.cli.serve",
    "db": "csms.cli.serve",
    "cluster": "csms.cli.cluster",
    "token": "csms.cli.serve",
    "site": "csms.cli.site",
    "price": "csms.cli.price",
    "badge": "csms.cli.badge",
    "wallet": "csms.cli.wallet",
    "station": "csms.cli.station",
    "meter": "csms.cli.meter",
    "load": "csms.cli.load",
    "simulate": "csms.cli.simulate",
    "reader": "csms.cli.reader",
    "user": "csms.cli.user",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole tree, or only `command`'s branch when it is known."""
    parser = argparse.ArgumentParser(
        prog="volthaus", description="Volthaus: prepaid backend for shared energy amenities"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    owner = COMMAND_OWNERS.get(command or "")
    for name in (owner,) if owner else COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(arguments[0] if arguments else None).parse_args(arguments)
    try:
        pending = pending_action(arguments, args)
        if pending is None:
            code: int = args.handler(args)
        else:
            code = run_audited(pending, lambda: int(args.handler(args)))
    except ValidationError as error:
        if error.title != "Settings":
            raise
        # Bad configuration is bad input: name the setting, exit 2, no traceback.
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            flag = f"--{field.replace('_', '-')}"
            option = flag if flag in arguments else f"VOLTHAUS_{field.upper()}"
            print(f"volthaus: {field} ({option}): {problem['msg']}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
