from __future__ import annotations

import pytest

from csms.ocpp.security import (
    generate_station_password,
    hash_station_password,
    is_station_password_hash,
    verify_station_password,
)


def test_hash_verifies_only_the_right_password() -> None:
    hashed = hash_station_password("s3cret-passw0rd")
    assert hashed.startswith("scrypt$16384$8$1$")
    assert "s3cret" not in hashed
    assert is_station_password_hash(hashed)
    assert verify_station_password("s3cret-passw0rd", hashed)
    assert not verify_station_password("s3cret-passw0rD", hashed)
    assert not verify_station_password("", hashed)


def test_same_password_hashes_differently() -> None:
    assert hash_station_password("same") != hash_station_password("same")


@pytest.mark.parametrize(
    "bad", ["", "plain", "scrypt$16384$8$1$!!$AAAA", "scrypt$3$8$1$AAAA$AAAA", "bcrypt$x$y$z$a$b"]
)
def test_malformed_hash_never_verifies(bad: str) -> None:
    assert not is_station_password_hash(bad)
    assert not verify_station_password("anything", bad)


def test_empty_password_refused() -> None:
    with pytest.raises(ValueError, match="password"):
        hash_station_password("")


def test_generated_password_within_ocpp_limits() -> None:
    password = generate_station_password()
    assert len(password) == 40
    assert password != generate_station_password()
    with pytest.raises(ValueError, match="length"):
        generate_station_password(8)
