"""Station credentials and transport security (OCPP security profiles 0-3).

Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``: the cost parameters travel
with the hash, so they can be raised later without invalidating stored ones. Beside it, a
verified-login record under a key the database does not hold (`login_verifier`) lets a station
whose password was checked once log in again without scrypt, also after a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

SCHEME = "scrypt"
# N=2^14, r=8, p=1: the common interactive-login setting (about 40 ms and 16 MiB per check);
# imported station passwords are often chosen by people, so a fast hash would not do.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# OCPP 1.6 security whitepaper and 2.0.1 BasicAuthPassword: 16 to 40 characters.
PASSWORD_MIN_LENGTH = 16
PASSWORD_MAX_LENGTH = 40


def _scrypt(plain: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        plain.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=256 * 1024 * 1024
    )


def hash_station_password(plain: str) -> str:
    """A salted scrypt hash of a Basic-auth password, as stored in `Station.password_hash`."""
    if not plain:
        raise ValueError("password must not be empty")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(plain, salt, _N, _R, _P)
    return "$".join(
        (
            SCHEME,
            str(_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def is_station_password_hash(value: str) -> bool:
    """True if `value` is in the format `hash_station_password` writes (for site import checks)."""
    try:
        _parse(value)
    except ValueError:
        return False
    return True


def _parse(hashed: str) -> tuple[int, int, int, bytes, bytes]:
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("password_hash: not a scrypt$n$r$p$salt$hash value")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"password_hash: malformed ({exc})") from None
    if n < 2 or n & (n - 1) or not (1 <= r <= 64) or not (1 <= p <= 16) or not salt or not digest:
        raise ValueError("password_hash: cost parameters or salt out of range")
    return n, r, p, salt, digest


def verify_station_password(plain: str, hashed: str) -> bool:
    """Constant-time check of `plain` against a stored hash; False for a malformed hash."""
    try:
        n, r, p, salt, digest = _parse(hashed)
    except ValueError:
        return False
    candidate = _scrypt(plain, salt, n, r, p)
    return hmac.compare_digest(candidate, digest) and len(candidate) == len(digest)


def generate_station_password(length: int = PASSWORD_MAX_LENGTH) -> str:
    """A random password within the OCPP length limits, for rotation."""
    if not PASSWORD_MIN_LENGTH <= length <= PASSWORD_MAX_LENGTH:
        raise ValueError(
            f"length must be between {PASSWORD_MIN_LENGTH} and {PASSWORD_MAX_LENGTH}"
        )
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


# The verified-login record. The scrypt hash above costs ~40 ms of CPU per check, paid again by
# every station after every restart. A station whose password has been checked once gets a
# record HMAC-SHA256(login key, station id, scrypt hash, password): checking it costs
# microseconds, and the login key is kept outside the database (setting or key file), so a
# stolen database alone cannot test a single password guess against it. Binding the scrypt hash
# in means any change of the hash (a new password by any path) voids the record by itself.
VERIFIER_SCHEME = "hmac-sha256-v1"
LOGIN_KEY_BYTES = 32


def login_verifier(key: bytes, station_id: str, password_hash: str | None, plain: str) -> str:
    """The verified-login record of a station's password (`password_hash` None: not hashed
    yet, as after a site import of plain passwords)."""
    message = "\x00".join((VERIFIER_SCHEME, station_id, password_hash or "", plain))
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return f"{VERIFIER_SCHEME}${base64.b64encode(digest).decode('ascii')}"


def verifier_matches(
    key: bytes, station_id: str, password_hash: str | None, plain: str, stored: str | None
) -> bool:
    """Constant-time check of `plain` against a stored verified-login record."""
    if not stored:
        return False
    expected = login_verifier(key, station_id, password_hash, plain)
    return hmac.compare_digest(expected.encode("ascii"), stored.encode("ascii", "replace"))


def parse_login_key(text: str) -> bytes:
    """A login key as written in the setting or key file: 64 hex digits (32 bytes)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("login key: expected 64 hex digits") from None
    if len(key) != LOGIN_KEY_BYTES:
        raise ValueError(f"login key: expected {LOGIN_KEY_BYTES * 2} hex digits")
    return key


def load_or_create_login_key(path: Path) -> bytes:
    """The login key in `path`, created (32 random bytes, mode 0600) when there is none.

    Created with O_EXCL so two processes starting at once cannot each write their own key: the
    loser reads the winner's.
    """
    try:
        return parse_login_key(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(LOGIN_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_login_key(path.read_text(encoding="ascii"))
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key.hex() + "\n")
    return key
