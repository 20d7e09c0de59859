"""`volthaus user create|list|disable|reset`: people who sign in to the pages."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.cli.database import run_in_transaction
from csms.settings import Settings
from csms.web.models import WEB_ROLES, WebUser
from csms.web.users import (
    UserProblem,
    create_user,
    disable_user,
    new_password_link,
    normal_email,
    set_password_url,
    site_users,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    user = subparsers.add_parser("user", help="people who sign in to the web pages")
    actions = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create a user; prints a one-time link to set the password")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=WEB_ROLES)
    create.add_argument("--site", help="the site (every role but admin)")
    create.add_argument("--account", help="the household account (residents)")
    create.add_argument("--language", default="de", choices=("de", "en"))
    create.set_defaults(handler=run_create)
    listing = actions.add_parser("list", help="the users of a site")
    listing.add_argument("--site", required=True)
    listing.set_defaults(handler=run_list)
    disable = actions.add_parser("disable", help="the user can no longer sign in")
    disable.add_argument("email")
    disable.set_defaults(handler=run_disable)
    reset = actions.add_parser("reset", help="a new one-time link to set the password")
    reset.add_argument("email")
    reset.set_defaults(handler=run_reset)


def _fail(problem: UserProblem) -> int:
    flag = {"email": "--email", "role": "--role", "site": "--site", "account": "--account",
            "language": "--language"}.get(problem.field, problem.field)
    print(f"volthaus user: {flag}: {problem.message}", file=sys.stderr)
    return 2


def run_create(args: argparse.Namespace) -> int:
    async def work(db: AsyncSession) -> str:
        _, token = await create_user(
            db, email=args.email, role=args.role, site_id=args.site, account_ref=args.account,
            language=args.language, now=datetime.now(UTC))
        return token

    try:
        token = run_in_transaction(work)
    except UserProblem as problem:
        return _fail(problem)
    print(f"created {args.role} {args.email.strip().lower()}")
    print("set the password once, within 7 days, at:")
    print(set_password_url(Settings().pages_url(), token))
    return 0


def run_list(args: argparse.Namespace) -> int:
    users = run_in_transaction(lambda db: site_users(db, args.site))
    for user in users:
        state = "disabled" if user.disabled_at else ("active" if user.password_hash else "invited")
        print(f"{user.email}\t{user.role}\t{state}")
    return 0


async def _user(db: AsyncSession, email: str) -> WebUser:
    address = normal_email(email)
    user = (await db.exec(select(WebUser).where(col(WebUser.email) == address))).first()
    if user is None:
        raise UserProblem("email", f"no user {address}")
    return user


def run_disable(args: argparse.Namespace) -> int:
    async def work(db: AsyncSession) -> None:
        await disable_user(db, await _user(db, args.email), datetime.now(UTC))

    try:
        run_in_transaction(work)
    except UserProblem as problem:
        return _fail(problem)
    print(f"disabled {args.email}")
    return 0


def run_reset(args: argparse.Namespace) -> int:
    async def work(db: AsyncSession) -> str:
        return await new_password_link(db, await _user(db, args.email), datetime.now(UTC))

    try:
        token = run_in_transaction(work)
    except UserProblem as problem:
        return _fail(problem)
    print(set_password_url(Settings().pages_url(), token))
    return 0
