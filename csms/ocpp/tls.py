"""TLS for the OCPP listener: server certificates, and client certificates checked against a CA.

One TLS listener serves profiles 2 and 3 (and profile-1 stations that choose TLS): client
certificates are optional at the TLS level and, when presented, must chain to a trusted CA
(the configured client CA and the station CA, which signs stations' CSRs); whether a station
needed one is decided per station after the handshake.

The listener can hold an ECDSA and an RSA certificate at once: OpenSSL picks the one the
negotiated cipher suite needs, so stations that only speak the RSA suites and those that only
speak the ECDSA ones both get through.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from csms.ocpp.connection import Limits
from csms.ocpp.options import ServerOptions

# TLS 1.2 suites offered, the server's preference first. OCPP 2.0.1 (A00.FR.318-320) and the 1.6
# Security Whitepaper name four a central system must support: ECDHE-ECDSA with AES-128/256-GCM
# and the RSA key exchange with AES-128/256-GCM (TLS_RSA_WITH_AES_128_GCM_SHA256, which
# Python's default list leaves out because it has no forward secrecy). Forward-secret suites
# come first, so only a station that offers nothing better ends up on plain RSA.
OCPP_TLS12_CIPHERS: Final = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
))

CertPair = tuple[str | Path, str | Path]


def server_tls_context(
    cert_file: str | Path,
    key_file: str | Path,
    client_ca_file: str | Path | None = None,
    *,
    more_pairs: Sequence[CertPair] = (),
    client_ca_pem: str | None = None,
) -> ssl.SSLContext:
    """The listener's context: `cert_file`/`key_file` and `more_pairs` (one certificate per key
    type: a second pair of the same type replaces the first), client certificates checked
    against `client_ca_file` and `client_ca_pem` when either is given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # OCPP 2.0.1 A00.FR.3xx and the 1.6 Security Whitepaper: TLS 1.2 or newer.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(OCPP_TLS12_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    for cert, key in ((cert_file, key_file), *more_pairs):
        context.load_cert_chain(str(cert), str(key))
    if client_ca_file is not None:
        context.load_verify_locations(cafile=str(client_ca_file))
    if client_ca_pem is not None:
        context.load_verify_locations(cadata=client_ca_pem)
    if client_ca_file is not None or client_ca_pem is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def options_from_settings(settings: Any) -> ServerOptions:
    """Listener options from `Settings`: TLS when a certificate and key are configured, or
    when the station CA is to issue the listener's certificates (`ocpp_tls_self_issued`)."""
    station_ca = settings.station_ca()
    pairs: list[CertPair] = []
    if settings.ocpp_tls_cert_file and settings.ocpp_tls_key_file:
        pairs.append((settings.ocpp_tls_cert_file, settings.ocpp_tls_key_file))
        if settings.ocpp_tls_second_cert_file and settings.ocpp_tls_second_key_file:
            pairs.append((settings.ocpp_tls_second_cert_file, settings.ocpp_tls_second_key_file))
    elif settings.ocpp_tls_self_issued:
        names = [name for name in settings.ocpp_tls_server_names.split(",") if name]
        pairs.extend(station_ca.server_pairs(names))
    context = None
    if pairs:
        # With TLS on, certificates the station CA signed are what profile-3 stations present:
        # the CA is needed now (made here on a first start).
        context = server_tls_context(
            *pairs[0],
            settings.ocpp_tls_client_ca_file,
            more_pairs=pairs[1:],
            client_ca_pem=station_ca.authority().cert_pem,
        )
    return ServerOptions(
        host=settings.host,
        port=settings.ocpp_port,
        tls_port=settings.ocpp_tls_port if context else None,
        tls_context=context,
        compression=settings.ocpp_compression,
        login_key=settings.station_login_key(),
        login_hash_interval_s=settings.login_hash_interval_s,
        commit_window_s=settings.ocpp_commit_window_ms / 1000,
        limits=Limits(rate_per_s=settings.ocpp_messages_per_s,
                      burst=settings.ocpp_message_burst),
        station_ca=station_ca,
        station_cert_days=settings.station_cert_days,
    )
