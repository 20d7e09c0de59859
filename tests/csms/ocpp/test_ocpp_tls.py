"""Security profiles 2 and 3 for real on loopback, with generated certificates."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.exceptions import InvalidHandshake, InvalidStatus

from csms.ocpp.connection import Limits
from csms.ocpp.server import ServerOptions
from csms.ocpp.tls import options_from_settings, server_tls_context
from csms.settings import Settings
from tests.csms.ocpp.certs import CertAuthority
from tests.csms.ocpp.conftest import PASSWORD, Node, add_site, add_station, start_node, stop_node
from tests.csms.ocpp.wsclient import BOOT16, exchange, open_raw


@dataclass
class TlsNode:
    node: Node
    ca: CertAuthority

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.node.server.tls_port}/ocpp"


@pytest.fixture
async def tls(sqlite_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[TlsNode]:
    ca = CertAuthority(tmp_path)
    server_cert = ca.issue("localhost", server=True)
    context = server_tls_context(server_cert.cert, server_cert.key, ca.issued.cert)
    await add_site(sqlite_engine)
    node = await start_node(
        sqlite_engine,
        options=ServerOptions(port=0, tls_port=0, tls_context=context, limits=Limits()),
    )
    yield TlsNode(node, ca)
    await stop_node(node)


async def status_of(url: str, station_id: str, **kwargs: object) -> int:
    try:
        ws = await open_raw(url, station_id, **kwargs)  # type: ignore[arg-type]
    except InvalidStatus as refused:
        return refused.response.status_code
    answer = await exchange(ws, [2, "1", "BootNotification", BOOT16])
    await ws.close()
    assert answer[2]["status"] == "Accepted"
    return 101


async def test_profile_2_needs_tls_and_password(tls: TlsNode) -> None:
    await add_station(tls.node.engine, "WB-2", profile=2)
    context = tls.ca.client_context()
    assert await status_of(tls.wss, "WB-2", password=PASSWORD, ssl_context=context) == 101
    assert await status_of(tls.node.url, "WB-2", password=PASSWORD) == 403
    assert await status_of(tls.wss, "WB-2", ssl_context=context) == 401
    assert (
        await status_of(tls.wss, "WB-2", password="wrong-wrong-wrong", ssl_context=context) == 401
    )


async def test_profile_3_client_certificate(tls: TlsNode, tmp_path: Path) -> None:
    await add_station(tls.node.engine, "WB-3", profile=3, password=None)
    await add_station(tls.node.engine, "WB-3b", profile=3, password=None)
    own = tls.ca.issue("WB-3")
    assert await status_of(tls.wss, "WB-3", ssl_context=tls.ca.client_context(own)) == 101
    # No certificate, or one naming another station: not enough.
    assert await status_of(tls.wss, "WB-3", ssl_context=tls.ca.client_context()) == 401
    assert await status_of(tls.wss, "WB-3b", ssl_context=tls.ca.client_context(own)) == 401
    # Plain websocket: refused before credentials matter.
    assert await status_of(tls.node.url, "WB-3") == 403
    # A certificate from another CA fails the TLS handshake itself.
    (tmp_path / "rogue").mkdir()
    rogue = CertAuthority(tmp_path / "rogue", "Rogue CA")
    stranger = rogue.issue("WB-3")
    # (TLS 1.3: the client learns of it when the server drops the connection.)
    with pytest.raises((ssl.SSLError, ConnectionError, InvalidHandshake)):
        ws = await open_raw(tls.wss, "WB-3", ssl_context=tls.ca.client_context(stranger))
        await exchange(ws, [2, "1", "BootNotification", BOOT16])


async def test_profile_is_a_minimum(tls: TlsNode) -> None:
    await add_station(tls.node.engine, "WB-1", profile=1)
    await add_station(tls.node.engine, "WB-2c", profile=2, password=None)
    # A profile-1 station may use TLS; a profile-2 station may prove itself with a certificate.
    assert (
        await status_of(tls.wss, "WB-1", password=PASSWORD, ssl_context=tls.ca.client_context())
        == 101
    )
    assert await status_of(tls.node.url, "WB-1", password=PASSWORD) == 101
    cert = tls.ca.issue("WB-2c")
    assert await status_of(tls.wss, "WB-2c", ssl_context=tls.ca.client_context(cert)) == 101


async def test_simulator_over_tls(tls: TlsNode) -> None:
    from csms.simulator.station import SimStation

    await add_station(tls.node.engine, "WB-S", profile=2, protocol="ocpp2.0.1")
    station = SimStation(
        tls.wss,
        "WB-S",
        protocol="ocpp2.0.1",
        password=PASSWORD,
        ssl_context=tls.ca.client_context(),
    )
    async with station:
        assert await station.boot() == "Accepted"


def test_options_from_settings(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    cert = ca.issue("localhost", server=True)
    plain = options_from_settings(Settings(ocpp_port=9100, ocpp_messages_per_s=5,
                                           ocpp_message_burst=10))
    assert plain.tls_context is None and plain.tls_port is None and plain.port == 9100
    # The per-station message limit is a setting (issue 12).
    assert (plain.limits.rate_per_s, plain.limits.burst) == (5, 10)
    secure = options_from_settings(
        Settings(
            ocpp_tls_cert_file=cert.cert,
            ocpp_tls_key_file=cert.key,
            ocpp_tls_client_ca_file=ca.issued.cert,
            ocpp_tls_port=9443,
            station_ca_dir=tmp_path / "station-ca",
        )
    )
    assert secure.tls_port == 9443 and secure.tls_context is not None
    assert secure.tls_context.verify_mode == ssl.CERT_OPTIONAL
