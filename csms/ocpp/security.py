"""Station credentials and transport security (OCPP security profiles 0-3).

Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``: the cost parameters travel
with the hash, so they can be raised later without invalidating stored ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

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
