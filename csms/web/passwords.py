"""Password hashing for people (argon2id, the OWASP recommendation), and the sign-in throttle.

Hashing costs tens of milliseconds of CPU by design; the pages run it in a worker thread so the
event loop that serves stations is not held while a password is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommendation)

MIN_PASSWORD_LENGTH = 10


class PasswordProblem(ValueError):
    """A password that is not accepted; the message says why."""


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordProblem(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise PasswordProblem("password: no spaces at the start or end")


def hash_password_sync(password: str) -> str:
    return _HASHER.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; a missing hash is checked against a dummy so the
    answer takes as long for an unknown e-mail as for a wrong password."""
    stored = password_hash or _DUMMY_HASH
    try:
        await asyncio.to_thread(_HASHER.verify, stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return password_hash is not None


_DUMMY_HASH = _HASHER.hash("not a password anyone has")


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most `per_email` wrong passwords for one e-mail and `per_client` from one address
    within `window`; then sign-in waits until the oldest of them leaves the window."""

    per_email: int = 5
    per_client: int = 20
    window: timedelta = timedelta(minutes=15)

    def wait(
        self, email_failures: Sequence[datetime], client_failures: Sequence[datetime],
        now: datetime,
    ) -> timedelta | None:
        """How long this sign-in must wait, or None when it may be tried now."""
        waits = [
            _wait(email_failures, self.per_email, self.window, now),
            _wait(client_failures, self.per_client, self.window, now),
        ]
        longest = max((w for w in waits if w is not None), default=None)
        return longest


def _wait(
    failures: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> timedelta | None:
    recent = sorted(at for at in failures if now - at < window)
    if len(recent) < limit:
        return None
    # The attempt that would bring the count under the limit opens when this one expires.
    opens_at = recent[len(recent) - limit] + window
    return max(opens_at - now, timedelta(seconds=1))
