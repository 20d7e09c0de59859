"""Station certificates without a hand-made PKI: the CA's work as pure functions on PEM.

What a station sends (a CSR, OCPP 2.0.1 A02/A03 and the 1.6 Security Whitepaper's
SignCertificate) is checked here, the CA signs it here, and the renewal decision is made here;
files, the database and the websocket are the callers' business (`csms.ocpp.station_ca`,
`csms.ocpp.station_certificates`). Time is always an argument.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Keys a station may certify: what OCPP's cipher suites can use (P-256/P-384 ECDSA, RSA of at
# least 2048 bits, the whitepaper's minimum).
_CURVES: Final = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS: Final = 2048
# A certificate counts from a few minutes back: station clocks drift, and one set a little
# behind must not refuse the certificate it just asked for.
_BACKDATE: Final = dt.timedelta(minutes=5)

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CsrRefused(ValueError):
    """The CSR cannot be signed; the message says why (for the log and the security event)."""


def check_csr(csr_pem: str | bytes, station_id: str) -> x509.CertificateSigningRequest:
    """The CSR a station sent, if it may be signed for `station_id`; else CsrRefused.

    It must be one PEM CSR whose signature verifies (the station holds the key), whose subject
    has exactly one common name equal to the station id (the TLS listener admits a client
    certificate for the station its CN names), with a key OCPP's cipher suites can use.
    """
    data = csr_pem.encode("ascii", "replace") if isinstance(csr_pem, str) else csr_pem
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        raise CsrRefused("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CsrRefused("the CSR's signature does not verify")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CsrRefused(f"the subject must have one common name, it has {len(names)}")
    if names[0].value != station_id:
        raise CsrRefused(f"subject CN {str(names[0].value)[:64]!r} is not the station id")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise CsrRefused(f"curve {key.curve.name} is not P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
    else:
        raise CsrRefused("the key is neither ECDSA nor RSA")
    return csr


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA's certificate and key: signs station CSRs and the TLS listener's certificates."""

    cert: x509.Certificate
    key: CaKey

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign_station(
        self, csr: x509.CertificateSigningRequest, *, now: dt.datetime, days: int
    ) -> x509.Certificate:
        """A client certificate for a CSR `check_csr` passed: the CSR's subject and key, the
        CA as issuer, valid `days` days (never past the CA's own end)."""
        builder = _leaf(self, csr.subject, csr.public_key(), now, days)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        return builder.sign(self.key, _hash_for(self.key))

    def issue_server(
        self, key: CaKey, names: Sequence[str], *, now: dt.datetime, days: int
    ) -> x509.Certificate:
        """A server certificate for the TLS listener: CN the first name, every name (host name
        or IP address) in the subjectAltName, which is what clients check."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        builder = _leaf(self, subject, key.public_key(), now, days)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(self.key, _hash_for(self.key))

    def chain_pem(self, leaf: x509.Certificate) -> str:
        """The certificateChain of CertificateSigned: leaf first, then the CA (2.0.1 says
        the bundle follows the chain from the leaf)."""
        return cert_pem(leaf) + self.cert_pem


def new_authority(
    common_name: str, *, now: dt.datetime, days: int = 3650
) -> CertificateAuthority:
    """A fresh self-signed CA on a P-256 key (fast to make, and what OCPP stations prefer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def _leaf(
    ca: CertificateAuthority, subject: x509.Name, public_key: object, now: dt.datetime, days: int
) -> x509.CertificateBuilder:
    not_after = min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )


def _hash_for(key: CaKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


# PEM in and out


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_pem(key: CaKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_authority(cert_data: bytes, key_data: bytes) -> CertificateAuthority:
    """A CA from PEM files' contents; ValueError when the key does not match the certificate
    or the certificate may not sign others."""
    cert = x509.load_pem_x509_certificate(cert_data)
    key = serialization.load_pem_private_key(key_data, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("the CA key must be ECDSA or RSA")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise ValueError("the CA key does not belong to the CA certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError("the CA certificate is not a CA (basicConstraints CA:TRUE missing)")
    return CertificateAuthority(cert, key)


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def chain_of(pem: str | bytes) -> list[x509.Certificate]:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificates(data)


def root_of_chain(pem: str | bytes) -> x509.Certificate | None:
    """The self-signed certificate ending a PEM chain (leaf first), if it ends with one."""
    chain = chain_of(pem)
    last = chain[-1]
    if last.issuer != last.subject:
        return None
    try:
        last.verify_directly_issued_by(last)
    except (ValueError, TypeError, InvalidSignature):
        return None
    return last


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True if `ca` signed `cert` (issuer name and signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# renewal


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One certificate issued to a station, as recorded."""

    station_id: str
    serial: str
    not_after: dt.datetime


def renewal_due(
    issued: Iterable[IssuedCertificate], *, now: dt.datetime, within: dt.timedelta
) -> list[str]:
    """The stations (sorted) whose newest certificate ends within `within` of `now`, or has
    ended: each is asked for a new CSR. Only a station's newest certificate counts; one that
    renewed already has a later one and is left alone."""
    newest: dict[str, dt.datetime] = {}
    for cert in issued:
        known = newest.get(cert.station_id)
        if known is None or cert.not_after > known:
            newest[cert.station_id] = cert.not_after
    return sorted(station for station, ends in newest.items() if ends - now <= within)
