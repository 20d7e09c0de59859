"""Staff actions on the command line: every `volthaus` command that changes something leaves a
row in the audit log (`csms.audit`), written in the command's own transaction when it commits,
else (a refusal, exit 2; a failure) on its own afterwards.

Whoever can run the CLI against the database acts as the operator: the row names the `--staff`
given, else the operating-system user, as `cli:NAME` with role `cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from csms.audit.record import PendingAction, finish, watch

# The commands that change something, as typed.
AUDITED = (
    ("site", "import"),
    ("token", "create"),
    ("badge", "register"),
    ("badge", "block"),
    ("badge", "unblock"),
    ("badge", "enroll"),
    ("wallet", "topup"),
    ("wallet", "correct"),
    ("wallet", "emergency"),
    ("wallet", "policy", "set"),
    ("wallet", "vouchers", "create"),
    ("wallet", "vouchers", "redeem"),
    ("station", "approve"),
    ("station", "send-after-boot"),
    ("meter", "exchange"),
    ("load", "limit"),
    ("load", "lift"),
    ("user", "create"),
    ("user", "disable"),
    ("user", "reset"),
)

# Arguments that name what was acted on (never a voucher code or a secret).
_TARGETS = ("account", "reader", "uid", "station_id", "meter_id", "state", "file", "role",
            "policy_file", "email", "station", "limit_id")


def pending_action(arguments: Sequence[str], args: argparse.Namespace) -> PendingAction | None:
    words = [word for word in arguments if not word.startswith("-")]
    command = next((c for c in AUDITED if tuple(words[: len(c)]) == c), None)
    if command is None:
        return None
    name = getattr(args, "staff", None) or _os_user()
    target = " ".join(
        f"{key}={getattr(args, key)}" for key in _TARGETS if getattr(args, key, None) is not None
    )
    return PendingAction(
        channel="cli", actor=f"cli:{name}", role="cli", action="volthaus " + " ".join(command),
        target=target or None, site_id=getattr(args, "site", None), at=datetime.now(UTC),
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_audited(pending: PendingAction, handler: Callable[[], int]) -> int:
    """Run a command's handler with every session's first commit carrying the audit row."""
    remove = watch(Session, pending)
    try:
        code = handler()
    except BaseException:
        remove()
        _finish(pending, 1)
        raise
    remove()
    _finish(pending, code)
    return code


def _finish(pending: PendingAction, code: int) -> None:
    outcome = "ok" if code == 0 else "refused" if code == 2 else "failed"

    async def go() -> None:
        from csms.db.engine import session_factory
        from csms.serve import open_database
        from csms.settings import Settings

        engine = await open_database(Settings())
        try:
            await finish(session_factory(engine), pending, code, outcome)
        finally:
            await engine.dispose()

    try:
        asyncio.run(go())
    except Exception as error:  # the command's own answer stands; say the row is missing
        print(f"volthaus: audit log not written: {error}", file=sys.stderr)
