"""The station CA's pure parts: CSR checks, signing, chains, the renewal decision (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.ocpp.certificates import (
    CsrRefused,
    IssuedCertificate,
    cert_pem,
    chain_of,
    check_csr,
    issued_by,
    key_pem,
    load_authority,
    new_authority,
    renewal_due,
    root_of_chain,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def csr_pem(common_names: list[str], key: object = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        key, hashes.SHA256()  # type: ignore[arg-type]
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_a_csr_naming_the_station_is_signed_into_a_chain_that_verifies() -> None:
    ca = new_authority("Test CA", now=NOW)
    csr = check_csr(csr_pem(["WB-1"]), "WB-1")
    cert = ca.sign_station(csr, now=NOW, days=365)
    assert cert.subject == csr.subject
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=365)
    assert cert.not_valid_before_utc <= NOW
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    leaf, root = chain_of(ca.chain_pem(cert))
    assert leaf == cert and root == ca.cert
    assert issued_by(leaf, root)
    assert root_of_chain(ca.chain_pem(cert)) == ca.cert


def test_rsa_csrs_of_2048_bits_are_taken() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert check_csr(csr_pem(["WB-1"], key), "WB-1").subject.rfc4514_string() == "CN=WB-1"


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (lambda: csr_pem(["WB-2"]), "is not the station id"),
        (lambda: csr_pem(["WB-1", "WB-2"]), "one common name"),
        (lambda: csr_pem([]), "one common name"),
        (lambda: csr_pem(["WB-1"], ec.generate_private_key(ec.SECP256K1())), "curve"),
        (lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
         "not a PEM"),
        (lambda: "hello", "not a PEM"),
    ],
)
def test_csrs_that_cannot_be_signed(pem: object, reason: str) -> None:
    with pytest.raises(CsrRefused, match=reason):
        check_csr(pem(), "WB-1")  # type: ignore[operator]


def test_a_csr_whose_signature_does_not_verify_is_refused() -> None:
    # One bit of an RSA signature flipped (its length stays, so the DER stays readable): the
    # CSR no longer proves that the sender holds the key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = x509.load_pem_x509_csr(csr_pem(["WB-1"], key).encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    at = der.rfind(good.signature) + 10
    der[at] ^= 0x01
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrRefused, match="does not verify"):
        check_csr(forged, "WB-1")


def test_a_weak_rsa_key_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CsrRefused, match="at least 2048"):
        check_csr(csr_pem(["WB-1"], key), "WB-1")


def test_a_certificate_never_outlives_its_ca() -> None:
    ca = new_authority("Short CA", now=NOW, days=10)
    cert = ca.sign_station(check_csr(csr_pem(["WB-1"]), "WB-1"), now=NOW, days=365)
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_server_certificates_name_hosts_and_addresses() -> None:
    ca = new_authority("Test CA", now=NOW)
    cert = ca.issue_server(ec.generate_private_key(ec.SECP256R1()), ["localhost", "127.0.0.1"],
                           now=NOW, days=30)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in alt.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert issued_by(cert, ca.cert)


def test_an_authority_is_read_back_from_its_pem_and_checked() -> None:
    ca = new_authority("Test CA", now=NOW)
    again = load_authority(ca.cert_pem.encode(), key_pem(ca.key))
    assert again.cert == ca.cert
    other = new_authority("Other CA", now=NOW)
    with pytest.raises(ValueError, match="does not belong"):
        load_authority(ca.cert_pem.encode(), key_pem(other.key))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = ca.issue_server(leaf_key, ["localhost"], now=NOW, days=30)
    with pytest.raises(ValueError, match="not a CA"):
        load_authority(cert_pem(leaf).encode(), key_pem(leaf_key))


def test_a_chain_without_its_root_has_none() -> None:
    ca = new_authority("Test CA", now=NOW)
    leaf = ca.issue_server(ec.generate_private_key(ec.SECP256R1()), ["localhost"], now=NOW,
                           days=30)
    assert root_of_chain(cert_pem(leaf)) is None


def test_renewal_is_due_for_stations_whose_newest_certificate_ends_soon() -> None:
    def issued(station: str, days: float) -> IssuedCertificate:
        return IssuedCertificate(station, f"{station}-{days}", NOW + dt.timedelta(days=days))

    certificates = [
        issued("WB-soon", 10),
        issued("WB-renewed", 5), issued("WB-renewed", 360),   # renewed already: left alone
        issued("WB-later", 31),
        issued("WB-edge", 30),                               # exactly at the window: due
        issued("WB-ended", -3),                              # ended: still asked
    ]
    assert renewal_due(certificates, now=NOW, within=dt.timedelta(days=30)) == [
        "WB-edge", "WB-ended", "WB-soon"]
    assert renewal_due([], now=NOW, within=dt.timedelta(days=30)) == []
