"""Station certificates for real: a whole node with the built-in station CA and self-issued TLS,
stations of both versions as the `ocpp` library's ChargePoint over real sockets on 127.0.0.1.

A station asks for a certificate (SignCertificate), receives it (CertificateSigned), connects
with it at security profile 3; the TLS listener offers OCPP's RSA and ECDSA suites; renewal
asks stations in time; the operator installs the CSMS root (API and CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from pydantic import ValidationError
from sqlmodel import select
from websockets.asyncio.client import ClientConnection, connect

from csms.cli.main import main as cli_main
from csms.db.engine import session_factory
from csms.inventory.models import Station
from csms.ocpp.certificates import chain_of, issued_by
from csms.ocpp.commands import StationGateway
from csms.ocpp.models import StationCertificate
from csms.ocpp.station_ca import StationCa
from csms.ocpp.tls import options_from_settings
from csms.serve import RunningNode, running_node
from csms.settings import Settings
from tests.conftest import Api, node_settings
from tests.csms.ocpp.conftest import PASSWORD, add_site, add_station, start_node, stop_node
from tests.csms.ocpp.wsclient import basic

LOGIN_KEY = "11" * 32


@dataclass
class Memory:
    """What the CSMS sent the station."""

    chains: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    installed: list[dict[str, Any]] = field(default_factory=list)
    triggered: list[str] = field(default_factory=list)


class Station16(ChargePoint16):
    memory: Memory

    @on("CertificateSigned")
    async def on_certificate_signed(self, certificate_chain: str, **extra: Any) -> Any:
        self.memory.chains.put_nowait({"certificate_chain": certificate_chain, **extra})
        return result16.CertificateSigned(status="Accepted")

    @on("InstallCertificate")
    async def on_install_certificate(self, certificate_type: str, certificate: str) -> Any:
        self.memory.installed.append({"type": certificate_type, "certificate": certificate})
        return result16.InstallCertificate(status="Accepted")

    @on("ExtendedTriggerMessage")
    async def on_extended_trigger(self, requested_message: str, **extra: Any) -> Any:
        self.memory.triggered.append(requested_message)
        return result16.ExtendedTriggerMessage(status="Accepted")


class Station201(ChargePoint201):
    memory: Memory

    @on("CertificateSigned")
    async def on_certificate_signed(self, certificate_chain: str, **extra: Any) -> Any:
        self.memory.chains.put_nowait({"certificate_chain": certificate_chain, **extra})
        return result201.CertificateSigned(status="Accepted")

    @on("InstallCertificate")
    async def on_install_certificate(self, certificate_type: str, certificate: str) -> Any:
        self.memory.installed.append({"type": certificate_type, "certificate": certificate})
        return result201.InstallCertificate(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger(self, requested_message: str, **extra: Any) -> Any:
        self.memory.triggered.append(requested_message)
        return result201.TriggerMessage(status="Accepted")


@dataclass
class Connected:
    client: Station16 | Station201
    websocket: ClientConnection
    task: asyncio.Task[None]

    @property
    def memory(self) -> Memory:
        return self.client.memory

    async def close(self) -> None:
        await self.websocket.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def connect_station(
    url: str, station_id: str, protocol: str, *, password: str | None = PASSWORD,
    ssl_context: ssl.SSLContext | None = None, client_class: type[Any] | None = None,
) -> Connected:
    websocket = await connect(
        f"{url}/{station_id}", subprotocols=[protocol],  # type: ignore[list-item]
        additional_headers=basic(station_id, password) if password else {},
        ssl=ssl_context, open_timeout=10,
    )
    client: Station16 | Station201
    if protocol == "ocpp1.6":
        client = (client_class or Station16)(station_id, websocket, response_timeout=15)
        client.memory = Memory()
        task = asyncio.create_task(client.start())
        boot = await client.call(call16.BootNotification(charge_point_vendor="V",
                                                         charge_point_model="M"))
    else:
        client = (client_class or Station201)(station_id, websocket, response_timeout=15)
        client.memory = Memory()
        task = asyncio.create_task(client.start())
        boot = await client.call(call201.BootNotification(
            charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"))
    assert boot.status == "Accepted"
    return Connected(client, websocket, task)


def make_csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


async def sign_certificate(station: Connected, csr: str) -> str:
    if isinstance(station.client, Station16):
        reply = await station.client.call(call16.SignCertificate(csr=csr))
    else:
        reply = await station.client.call(call201.SignCertificate(
            csr=csr, certificate_type="ChargingStationCertificate"))
    return str(reply.status)


@dataclass
class CaNode:
    node: RunningNode
    ca_dir: Path
    http: httpx.AsyncClient
    headers: dict[str, str]

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.node.ocpp_port}/ocpp"

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.node.ocpp.tls_port}/ocpp"

    @property
    def ca_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.ca_dir / "ca.crt").read_bytes())

    def tls_client(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_dir / "ca.crt"))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key))
        return context


@pytest.fixture
async def ca_node(tmp_path: Path) -> AsyncIterator[CaNode]:
    """A whole node (as `volthaus serve` runs it) with self-issued TLS from the built-in CA,
    which is made on the node's first start in an empty directory."""
    ca_dir = tmp_path / "station-ca"
    settings = node_settings(
        f"sqlite:///{tmp_path / 'certs.db'}", ocpp_tls_self_issued=True, ocpp_tls_port=0,
        station_ca_dir=ca_dir, login_key=LOGIN_KEY, station_cert_days=90)
    async with running_node(settings) as node:
        await add_site(node.engine)
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
            api = Api(node, http)
            yield CaNode(node, ca_dir, http, await api.token("installer", site="s1"))


async def recorded(node: RunningNode) -> list[StationCertificate]:
    async with session_factory(node.engine)() as session:
        return list((await session.exec(select(StationCertificate))).all())


async def answered(node: RunningNode, serial: str) -> str | None:
    """The station's recorded answer to CertificateSigned (written once it arrived)."""
    for _ in range(100):
        rows = [row for row in await recorded(node) if row.serial == serial]
        if rows and rows[0].station_status is not None:
            return rows[0].station_status
        await asyncio.sleep(0.05)
    return None


@pytest.mark.parametrize("protocol", ["ocpp2.0.1", "ocpp1.6"])
async def test_a_station_gets_a_certificate_and_connects_with_it_at_profile_3(
    ca_node: CaNode, protocol: str, tmp_path: Path
) -> None:
    await add_station(ca_node.node.engine, "WB-7", protocol=protocol, profile=1)
    station = await connect_station(ca_node.ws, "WB-7", protocol)
    try:
        # Another station's name in the CSR: Rejected, nothing signed.
        _, foreign = make_csr("WB-8")
        assert await sign_certificate(station, foreign) == "Rejected"
        key, csr = make_csr("WB-7")
        assert await sign_certificate(station, csr) == "Accepted"
        signed = await asyncio.wait_for(station.memory.chains.get(), 10)
        assert station.memory.chains.empty()
        leaf, root = chain_of(signed["certificate_chain"])
        serial = format(leaf.serial_number, "x")
        assert await answered(ca_node.node, serial) == "Accepted"
    finally:
        await station.close()
    if protocol == "ocpp2.0.1":
        assert signed["certificate_type"] == "ChargingStationCertificate"
    else:
        assert set(signed) == {"certificate_chain"}
    assert root == ca_node.ca_cert and issued_by(leaf, ca_node.ca_cert)
    assert leaf.subject.rfc4514_string() == "CN=WB-7"
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    (row,) = await recorded(ca_node.node)
    assert (row.station_id, row.serial, row.certificate_type) == (
        "WB-7", serial, "ChargingStationCertificate")
    assert row.not_after == leaf.not_valid_after_utc
    assert row.not_after - row.issued_at == dt.timedelta(days=90)

    # The operator raises the station to profile 3 (no password any more): its certificate is
    # what gets it in now.
    async with session_factory(ca_node.node.engine)() as session:
        inventory = (await session.exec(select(Station).where(Station.id == "WB-7"))).one()
        inventory.security_profile, inventory.password_hash = 3, None
        await session.commit()
    cert_path, key_path = tmp_path / "wb7.crt", tmp_path / "wb7.key"
    cert_path.write_text(signed["certificate_chain"])
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    secure = await connect_station(ca_node.wss, "WB-7", protocol, password=None,
                                   ssl_context=ca_node.tls_client(cert_path, key_path))
    try:
        held = ca_node.node.ocpp.connection("WB-7")
        assert held is not None and held.security_level == 3
    finally:
        await secure.close()


class Refusing201(ChargePoint201):
    """A station without a CertificateSigned handler: the library answers with a CALLERROR."""

    memory: Memory


async def test_a_certificate_the_station_did_not_take_is_recorded_as_such(
    ca_node: CaNode
) -> None:
    await add_station(ca_node.node.engine, "WB-N", protocol="ocpp2.0.1")
    station = await connect_station(ca_node.ws, "WB-N", "ocpp2.0.1", client_class=Refusing201)
    try:
        _, csr = make_csr("WB-N")
        assert await sign_certificate(station, csr) == "Accepted"
        for _ in range(100):
            rows = await recorded(ca_node.node)
            if rows and rows[0].station_status is not None:
                break
            await asyncio.sleep(0.05)
        assert [row.station_status for row in rows] == ["CallError"]
        # Renewal goes by certificates stations took: nothing to ask for here.
        certificates = ca_node.node.ocpp.certificates
        assert certificates is not None
        assert await certificates.due_for_renewal(dt.timedelta(days=1000)) == []
    finally:
        await station.close()


async def test_a_station_without_credentials_gets_no_certificate(
    ca_node: CaNode, tmp_path: Path
) -> None:
    await add_station(ca_node.node.engine, "WB-0", protocol="ocpp2.0.1", profile=0,
                      password=None)
    station = await connect_station(ca_node.ws, "WB-0", "ocpp2.0.1", password=None)
    try:
        _, csr = make_csr("WB-0")
        assert await sign_certificate(station, csr) == "Rejected"
    finally:
        await station.close()
    assert await recorded(ca_node.node) == []


async def tls12_handshake(node: CaNode, cipher: str) -> tuple[str, x509.Certificate]:
    """A TLS 1.2 client that offers `cipher` only: the suite agreed and the server's leaf."""
    context = node.tls_client()
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", node.node.ocpp.tls_port, ssl=context, server_hostname="127.0.0.1")
    try:
        agreed = writer.get_extra_info("cipher")
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    assert agreed[1] == "TLSv1.2"
    return agreed[0], x509.load_der_x509_certificate(der)


@pytest.mark.parametrize(
    ("cipher", "key_type"),
    [
        ("AES128-GCM-SHA256", rsa.RSAPublicKey),  # TLS_RSA_WITH_AES_128_GCM_SHA256
        ("AES256-GCM-SHA384", rsa.RSAPublicKey),  # TLS_RSA_WITH_AES_256_GCM_SHA384
        ("ECDHE-ECDSA-AES128-GCM-SHA256", ec.EllipticCurvePublicKey),
        ("ECDHE-ECDSA-AES256-GCM-SHA384", ec.EllipticCurvePublicKey),
        ("ECDHE-RSA-AES128-GCM-SHA256", rsa.RSAPublicKey),
    ],
)
async def test_the_listener_offers_the_suites_ocpp_requires(
    ca_node: CaNode, cipher: str, key_type: type
) -> None:
    agreed, leaf = await tls12_handshake(ca_node, cipher)
    assert agreed == cipher
    # The certificate that goes with the suite, issued by the station CA.
    assert isinstance(leaf.public_key(), key_type)
    assert issued_by(leaf, ca_node.ca_cert)


async def test_a_whole_ocpp_session_over_the_rsa_only_suite(ca_node: CaNode) -> None:
    await add_station(ca_node.node.engine, "WB-R", protocol="ocpp1.6", profile=2)
    context = ca_node.tls_client()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-GCM-SHA256")
    station = await connect_station(ca_node.wss, "WB-R", "ocpp1.6", ssl_context=context)
    try:
        assert station.websocket.transport.get_extra_info("cipher")[0] == "AES128-GCM-SHA256"
    finally:
        await station.close()


async def test_stations_are_asked_to_renew_before_their_certificates_end(
    ca_node: CaNode
) -> None:
    for station_id, protocol in (("WB-16", "ocpp1.6"), ("WB-21", "ocpp2.0.1")):
        await add_station(ca_node.node.engine, station_id, protocol=protocol)
    stations = [await connect_station(ca_node.ws, "WB-16", "ocpp1.6"),
                await connect_station(ca_node.ws, "WB-21", "ocpp2.0.1")]
    try:
        for station in stations:
            _, csr = make_csr(station.client.id)
            assert await sign_certificate(station, csr) == "Accepted"
            leaf, _ = chain_of((await asyncio.wait_for(station.memory.chains.get(), 10))[
                "certificate_chain"])
            assert await answered(ca_node.node, format(leaf.serial_number, "x")) == "Accepted"
        certificates = ca_node.node.ocpp.certificates
        assert certificates is not None
        gateway = StationGateway(ca_node.node.bus)
        # 90 days left: not due with a 30-day window, due with a 100-day one.
        assert await certificates.ask_for_renewals(gateway, dt.timedelta(days=30)) == {}
        answers = await certificates.ask_for_renewals(gateway, dt.timedelta(days=100))
        assert answers == {"WB-16": "Accepted", "WB-21": "Accepted"}
        assert stations[0].memory.triggered == ["SignChargePointCertificate"]
        assert stations[1].memory.triggered == ["SignChargingStationCertificate"]
    finally:
        for station in stations:
            await station.close()


@pytest.mark.parametrize(
    ("protocol", "certificate_type"),
    [("ocpp2.0.1", "CSMSRootCertificate"), ("ocpp1.6", "CentralSystemRootCertificate")],
)
async def test_the_operator_installs_the_csms_root(
    ca_node: CaNode, protocol: str, certificate_type: str
) -> None:
    await add_station(ca_node.node.engine, "WB-I", protocol=protocol)
    station = await connect_station(ca_node.ws, "WB-I", protocol)
    try:
        response = await ca_node.http.post("/api/v1/stations/WB-I/install-root",
                                           headers=ca_node.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"id": "WB-I", "certificateType": certificate_type,
                                   "status": "Accepted"}
        # The CLI asks the node the same way.
        token = ca_node.headers["Authorization"].removeprefix("Bearer ")
        code = await asyncio.to_thread(cli_main, [
            "station", "install-root", "WB-I", "--url", ca_node.node.http_url,
            "--token", token])
        assert code == 0
    finally:
        await station.close()
    assert [item["type"] for item in station.memory.installed] == [certificate_type] * 2
    # The root that signed the listener's certificates: what the station must trust.
    installed = x509.load_pem_x509_certificate(station.memory.installed[0]["certificate"].encode())
    assert installed == ca_node.ca_cert
    _, leaf = await tls12_handshake(ca_node, "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert issued_by(leaf, installed)


async def test_install_root_of_a_station_not_connected_is_a_conflict(ca_node: CaNode) -> None:
    await add_station(ca_node.node.engine, "WB-X", protocol="ocpp2.0.1")
    response = await ca_node.http.post("/api/v1/stations/WB-X/install-root",
                                       headers=ca_node.headers)
    assert response.status_code == 409
    missing = await ca_node.http.post("/api/v1/stations/WB-none/install-root",
                                      headers=ca_node.headers)
    assert missing.status_code == 404


def test_the_ca_is_made_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VOLTHAUS_STATION_CA_DIR", str(tmp_path / "ca"))
    assert cli_main(["station", "ca-cert"]) == 0
    first = capsys.readouterr().out
    assert cli_main(["station", "ca-cert"]) == 0
    assert capsys.readouterr().out == first
    assert x509.load_pem_x509_certificate(first.encode()).subject.rfc4514_string() == (
        "CN=Volthaus Station CA")
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600


async def test_configured_ecdsa_and_rsa_certificates_are_served_together(
    sqlite_engine: Any, tmp_path: Path
) -> None:
    # Files made elsewhere (here by another CA's directory), configured by hand.
    other = StationCa(tmp_path / "other-ca")
    (ec_cert, ec_key), (rsa_cert, rsa_key) = other.server_pairs(["127.0.0.1"])
    settings = Settings(
        ocpp_port=0, ocpp_tls_port=0, login_key=LOGIN_KEY, station_ca_dir=tmp_path / "ca",
        ocpp_tls_cert_file=ec_cert, ocpp_tls_key_file=ec_key,
        ocpp_tls_second_cert_file=rsa_cert, ocpp_tls_second_key_file=rsa_key)
    await add_site(sqlite_engine)
    running = await start_node(sqlite_engine, options=options_from_settings(settings))
    try:
        context = ssl.create_default_context(cafile=str(other.cert_file))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        for cipher, key_type in (("AES128-GCM-SHA256", rsa.RSAPublicKey),
                                 ("ECDHE-ECDSA-AES128-GCM-SHA256", ec.EllipticCurvePublicKey)):
            context.set_ciphers(cipher)
            _reader, writer = await asyncio.open_connection(
                "127.0.0.1", running.server.tls_port, ssl=context, server_hostname="127.0.0.1")
            leaf = x509.load_der_x509_certificate(
                writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
            assert writer.get_extra_info("cipher")[0] == cipher
            assert isinstance(leaf.public_key(), key_type)
            writer.close()
            await writer.wait_closed()
    finally:
        await stop_node(running)


def test_certificate_and_key_settings_go_in_pairs(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(ocpp_tls_second_cert_file=tmp_path / "a.crt")
    with pytest.raises(ValidationError, match="go together"):
        Settings(station_ca_key_file=tmp_path / "ca.key")
