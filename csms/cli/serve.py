"""`volthaus serve`, `volthaus db upgrade` and `volthaus token create|list|revoke`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from csms.auth.tokens import (
    ROLES,
    TokenNotFound,
    TokenScopeError,
    create_token,
    list_tokens,
    revoke_token,
)
from csms.cli.database import open_cli_database, run_in_transaction
from csms.db.engine import session_factory
from csms.logging import configure_logging
from csms.serve import serve_until_signalled, system_clock
from csms.settings import Settings

DEMO_SITE = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve the HTTP API and the OCPP listener")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="HTTP API port (default 8000)")
    serve.add_argument("--ocpp-port", type=int, help="OCPP websocket port (default 9000)")
    serve.add_argument(
        "--demo", action="store_true",
        help="load examples/demo-site.yaml if new, and emulate its laundry relays and meters",
    )
    serve.set_defaults(handler=run_serve)

    db = subparsers.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply all migrations")
    upgrade.set_defaults(handler=run_db_upgrade)

    token = subparsers.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_commands.add_parser("create", help="mint a token and print it once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--site", help="site the token is bound to (owner, installer, resident, reader)"
    )
    create.add_argument("--account", help="account the token is bound to (resident)")
    create.add_argument("--reader", help="badge reader the token is bound to (reader)")
    create.add_argument("--label", help="what the token is for")
    create.set_defaults(handler=run_token_create)
    listing = token_commands.add_parser(
        "list", help="tokens with role, scope and dates (never their secrets)"
    )
    listing.add_argument("--site", help="only the tokens bound to this site")
    listing.add_argument("--all", action="store_true", help="revoked tokens as well")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of lines")
    listing.set_defaults(handler=run_token_list)
    revoke = token_commands.add_parser(
        "revoke", help="revoke a token at once, on every node"
    )
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="the token's id (or the whole token)")
    revoke.set_defaults(handler=run_token_revoke)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in (
            ("host", getattr(args, "host", None)),
            ("http_port", getattr(args, "http_port", None)),
            ("ocpp_port", getattr(args, "ocpp_port", None)),
        )
        if value is not None
    }
    return Settings(**overrides)


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve_until_signalled(settings, site_file=DEMO_SITE if args.demo else None,
                                      emulate_devices=args.demo))
    return 0


def run_db_upgrade(args: argparse.Namespace) -> int:
    async def upgrade() -> None:
        engine = await open_cli_database()
        await engine.dispose()

    asyncio.run(upgrade())
    print("database is at the newest schema")
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    async def create() -> str:
        engine = await open_cli_database()
        try:
            async with session_factory(engine)() as session:
                token = await create_token(
                    session, role=args.role, site_id=args.site, account_id=args.account,
                    reader_id=args.reader, label=args.label, now=system_clock(),
                )
                await session.commit()
                return token
        finally:
            await engine.dispose()

    try:
        print(asyncio.run(create()))
    except TokenScopeError as error:
        print(f"volthaus token create: {error}", file=sys.stderr)
        return 2
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    tokens = run_in_transaction(
        lambda session: list_tokens(session, site_id=args.site, include_revoked=args.all)
    )
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    for token in tokens:
        scope = token["site_id"] or "*"
        if token["account_id"]:
            scope += f"/{token['account_id']}"
        if token["reader_id"]:
            scope += f"/{token['reader_id']}"
        state = f"revoked {token['revoked_at']}" if token["revoked_at"] else "active"
        print("\t".join(
            (token["id"], token["role"], scope, token["label"] or "-", token["created_at"], state)
        ))
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    try:
        token, was_active = run_in_transaction(
            lambda session: revoke_token(session, args.token_id, now=system_clock())
        )
    except TokenNotFound as error:
        print(f"volthaus token revoke: token_id: {error}", file=sys.stderr)
        return 2
    print(f"revoked {token['id']}" + ("" if was_active else " (was revoked already)"))
    return 0
