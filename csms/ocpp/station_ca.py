"""The station CA's files: a configured CA, or one Volthaus makes on first need and keeps.

Without configuration the CA lives in one directory (`VOLTHAUS_STATION_CA_DIR`): `ca.key`
(mode 0600) and `ca.crt`, made the first time something needs them (a station's CSR, the TLS
listener's certificates, an InstallCertificate). Nodes of one installation must share the CA:
share the directory, or configure the same CA files on each (`VOLTHAUS_STATION_CA_CERT_FILE`
and `VOLTHAUS_STATION_CA_KEY_FILE`).

The TLS listener's own certificates can come from the same CA (`VOLTHAUS_OCPP_TLS_SELF_ISSUED`):
an ECDSA and an RSA certificate, kept beside the CA and issued again before they end or when the
host names change, so that every cipher suite OCPP asks for has a certificate to go with it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csms.ocpp.certificates import (
    CaKey,
    CertificateAuthority,
    cert_pem,
    issued_by,
    key_pem,
    load_authority,
    new_authority,
)

CA_COMMON_NAME: Final = "Volthaus Station CA"
# The listener's certificates: a year, issued again in their last 30 days (at a start).
SERVER_DAYS: Final = 365
SERVER_RENEW: Final = dt.timedelta(days=30)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StationCa:
    """Where the CA comes from, loaded (or made) once per process on first need."""

    def __init__(
        self,
        directory: Path,
        *,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        common_name: str = CA_COMMON_NAME,
    ) -> None:
        if (cert_file is None) != (key_file is None):
            raise ValueError("a configured CA needs both its certificate and its key file")
        self.directory = directory
        self.external = cert_file is not None
        self.cert_file = cert_file or directory / "ca.crt"
        self.key_file = key_file or directory / "ca.key"
        self.common_name = common_name
        self._authority: CertificateAuthority | None = None
        # Signing runs in worker threads; the first load must happen once.
        self._lock = threading.Lock()

    def authority(self, now: dt.datetime | None = None) -> CertificateAuthority:
        """The CA (blocking file I/O: call it in a thread from the event loop)."""
        with self._lock:
            if self._authority is None:
                self._authority = self._load_or_create(now or _now())
            return self._authority

    def _load_or_create(self, now: dt.datetime) -> CertificateAuthority:
        if self.external:
            return load_authority(self.cert_file.read_bytes(), self.key_file.read_bytes())
        with _locked(self.directory):
            if self.key_file.exists() and self.cert_file.exists():
                return load_authority(self.cert_file.read_bytes(), self.key_file.read_bytes())
            ca = new_authority(self.common_name, now=now)
            # The key first and private from its first byte; the certificate last, so a
            # reader that finds the certificate finds a complete pair.
            _write_private(self.key_file, key_pem(ca.key))
            self.cert_file.write_text(ca.cert_pem, encoding="ascii")
            return ca

    def server_pairs(
        self, names: Sequence[str], now: dt.datetime | None = None
    ) -> list[tuple[Path, Path]]:
        """(certificate, key) files of the listener: ECDSA P-256 and RSA 2048, issued by the CA
        for `names` (host names or IP addresses), issued again when missing, ending within
        30 days, for other names or by another CA."""
        if not names:
            raise ValueError("the TLS listener's certificates need at least one host name")
        moment = now or _now()
        ca = self.authority(moment)
        self.directory.mkdir(parents=True, exist_ok=True)
        pairs = []
        with _locked(self.directory):
            for kind, make_key in (("ec", _ec_key), ("rsa", _rsa_key)):
                cert_path = self.directory / f"server-{kind}.crt"
                key_path = self.directory / f"server-{kind}.key"
                if not _server_cert_current(cert_path, ca, names, moment):
                    key = make_key()
                    cert = ca.issue_server(key, names, now=moment, days=SERVER_DAYS)
                    _write_private(key_path, key_pem(key))
                    cert_path.write_text(cert_pem(cert) + ca.cert_pem, encoding="ascii")
                pairs.append((cert_path, key_path))
        return pairs


def _ec_key() -> CaKey:
    return ec.generate_private_key(ec.SECP256R1())


def _rsa_key() -> CaKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _server_cert_current(
    path: Path, ca: CertificateAuthority, names: Sequence[str], now: dt.datetime
) -> bool:
    try:
        cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    shown = {str(getattr(name, "value", "")) for name in alt}
    return (
        shown == set(names)
        and cert.not_valid_after_utc - now > SERVER_RENEW
        and issued_by(cert, ca.cert)
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One process at a time makes the CA's files (two nodes starting at once on a shared
    directory must not each make their own CA)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
