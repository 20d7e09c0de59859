"""TLS for the OCPP listener: server certificate, and client certificates checked against a CA.

One TLS listener serves profiles 2 and 3 (and profile-1 stations that choose TLS): client
certificates are optional at the TLS level and, when presented, must chain to the configured
CA; whether a station needed one is decided per station after the handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from csms.ocpp.options import ServerOptions


def server_tls_context(
    cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # OCPP 2.0.1 A00.FR.3xx and the 1.6 Security Whitepaper: TLS 1.2 or newer.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    if client_ca_file is not None:
        context.load_verify_locations(cafile=str(client_ca_file))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def options_from_settings(settings: Any) -> ServerOptions:
    """Listener options from `Settings`; TLS when a certificate and key are configured."""
    context = None
    if settings.ocpp_tls_cert_file and settings.ocpp_tls_key_file:
        context = server_tls_context(
            settings.ocpp_tls_cert_file,
            settings.ocpp_tls_key_file,
            settings.ocpp_tls_client_ca_file,
        )
    return ServerOptions(
        host=settings.host,
        port=settings.ocpp_port,
        tls_port=settings.ocpp_tls_port if context else None,
        tls_context=context,
        compression=settings.ocpp_compression,
        login_key=settings.station_login_key(),
    )
