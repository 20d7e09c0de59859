"""`volthaus site import|export|schema`: the site file of contracts/site-file.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import yaml

from csms.cli.database import open_cli_database
from csms.db.engine import session_factory
from csms.inventory.sitefile import (
    SiteFileError,
    export_site,
    import_site_file,
    site_file_schema,
)
from csms.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    site = subparsers.add_parser("site", help="import, export and describe site files")
    actions = site.add_subparsers(dest="site_command", metavar="ACTION", required=True)
    do_import = actions.add_parser("import", help="validate a site file, then upsert it")
    do_import.add_argument("file", help="YAML or JSON site file")
    do_import.set_defaults(handler=run_import)
    do_export = actions.add_parser("export", help="write a site back as a site file")
    do_export.add_argument("site_id")
    do_export.add_argument("--format", choices=("json", "yaml"), default="json")
    do_export.set_defaults(handler=run_export)
    schema = actions.add_parser("schema", help="print the site file's JSON Schema")
    schema.set_defaults(handler=run_schema)


def run_import(args: argparse.Namespace) -> int:
    async def go() -> str:
        engine = await open_cli_database()
        try:
            document = await import_site_file(
                engine, args.file, login_key=Settings().station_login_key()
            )
        finally:
            await engine.dispose()
        return document.site.id

    try:
        site_id = asyncio.run(go())
    except SiteFileError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(
            f"volthaus site import: {len(error.problems)} problem(s); nothing was changed",
            file=sys.stderr,
        )
        return 2
    print(f"imported site {site_id}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    async def go() -> dict[str, Any]:
        engine = await open_cli_database()
        try:
            async with session_factory(engine)() as session:
                return await export_site(session, args.site_id)
        finally:
            await engine.dispose()

    try:
        document = asyncio.run(go())
    except LookupError as error:
        print(f"site_id: {error.args[0]}", file=sys.stderr)
        return 2
    if args.format == "yaml":
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(site_file_schema(), indent=2) + "\n")
    return 0
