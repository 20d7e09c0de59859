"""Station certificates over OCPP: sign what stations ask for, renew in time, install our root.

* SignCertificate (2.0.1 A02/A03, 1.6 Security Whitepaper): the CSR is checked at once and the
  answer is Accepted or Rejected; for an accepted one the CA signs it after the answer and the
  station receives CertificateSigned with the chain (leaf, then CA). Every certificate issued is
  recorded (`StationCertificate`) with the station's answer to CertificateSigned.
* Renewal: a duty loop (one node at a time) asks every connected station whose newest accepted
  certificate ends within the renewal window for a new CSR (1.6 ExtendedTriggerMessage
  SignChargePointCertificate, 2.0.1 TriggerMessage SignChargingStationCertificate).
* InstallCertificate of the CSMS root, for an operator command (`install_root_request`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, Protocol

import structlog
from cryptography import x509
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.bus.errors import BusError
from csms.inventory.models import Station
from csms.ocpp.certificates import (
    CsrRefused,
    IssuedCertificate,
    cert_pem,
    check_csr,
    renewal_due,
    root_of_chain,
)
from csms.ocpp.commands import CommandError, StationGateway
from csms.ocpp.connection import StationReplyInvalid
from csms.ocpp.events import PROTOCOL_16
from csms.ocpp.models import StationCertificate
from csms.ocpp.station_ca import StationCa
from csms.ocpp.wire import StationCallError

log = structlog.get_logger("csms.ocpp.certificates")

Clock = Callable[[], dt.datetime]
# 2.0.1 certificateType of a station's own certificate; V2G certificates belong to an ISO 15118
# PKI, which this CA is not.
CHARGING_STATION_CERTIFICATE: Final = "ChargingStationCertificate"
# How the renewal duty asks, per version (action, payload).
RENEWAL_TRIGGER: Final = {
    PROTOCOL_16: ("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}),
    "ocpp2.0.1": ("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}),
}
# The root certificate's type in InstallCertificate, per version.
ROOT_CERTIFICATE_TYPE: Final = {
    PROTOCOL_16: "CentralSystemRootCertificate",
    "ocpp2.0.1": "CSMSRootCertificate",
}


class _Connection(Protocol):
    """What the flow needs of a live connection (`csms.ocpp.connection.StationConnection`)."""

    station_id: str
    security_level: int

    async def call(
        self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
        checked: bool = False,
    ) -> dict[str, Any]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None: ...


class StationCertificates:
    """One per node; the connections' SignCertificate handlers call `csr_received`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ca: StationCa,
        *,
        clock: Clock,
        days: int = 365,
    ) -> None:
        self._sessions = sessions
        self.ca = ca
        self.clock = clock
        self.days = days
        # Stations whose certificate is being signed: a station repeating its CSR meanwhile
        # is refused, so one request makes one certificate.
        self._signing: set[str] = set()

    async def csr_received(
        self, conn: _Connection, csr: str, certificate_type: str | None = None
    ) -> bool:
        """True (answer Accepted) when the CSR will be signed; CertificateSigned follows the
        answer. False (Rejected): nothing is signed, the reason is logged."""
        reason = None
        if certificate_type not in (None, CHARGING_STATION_CERTIFICATE):
            reason = f"certificateType {certificate_type} is not signed by this CA"
        elif conn.security_level < 1:
            # A station that proved nothing could get a certificate for any id it claims.
            reason = "the station connected without credentials"
        elif conn.station_id in self._signing:
            reason = "a certificate for this station is being signed already"
        if reason is None:
            try:
                request = check_csr(csr, conn.station_id)
            except CsrRefused as refused:
                reason = str(refused)
        if reason is not None:
            log.warning("ocpp.csr_refused", station_id=conn.station_id, reason=reason)
            return False
        self._signing.add(conn.station_id)
        conn.spawn(self._sign_and_send(conn, request, certificate_type), "CertificateSigned")
        return True

    async def _sign_and_send(
        self, conn: _Connection, request: x509.CertificateSigningRequest,
        certificate_type: str | None,
    ) -> None:
        # Runs after the SignCertificate answer went out: the handler returned before this
        # task first ran, and the signing below yields to the loop before anything is sent.
        try:
            # Whole seconds: a certificate's times have no fraction, and the record matches it.
            now = self.clock().replace(microsecond=0)
            ca = await asyncio.to_thread(self.ca.authority, now)
            cert = await asyncio.to_thread(ca.sign_station, request, now=now, days=self.days)
            serial = format(cert.serial_number, "x")
            async with self._sessions() as session:
                session.add(StationCertificate(
                    station_id=conn.station_id, serial=serial,
                    not_after=cert.not_valid_after_utc, issued_at=now,
                    certificate_type=certificate_type or CHARGING_STATION_CERTIFICATE,
                ))
                await session.commit()
            payload: dict[str, Any] = {"certificateChain": ca.chain_pem(cert)}
            if certificate_type is not None:
                payload["certificateType"] = certificate_type
            log.info("ocpp.certificate_issued", station_id=conn.station_id, serial=serial,
                     not_after=cert.not_valid_after_utc.isoformat())
        finally:
            self._signing.discard(conn.station_id)
        try:
            reply = await conn.call("CertificateSigned", payload)
            status = str(reply.get("status"))
        except (StationCallError, StationReplyInvalid) as error:
            # Recorded as not accepted: renewal goes by the certificate the station took.
            status = "CallError" if isinstance(error, StationCallError) else "InvalidReply"
        async with self._sessions() as session:
            row = (await session.exec(
                select(StationCertificate).where(StationCertificate.serial == serial)
            )).one()
            row.station_status = status[:16]
            await session.commit()
        log.info("ocpp.certificate_signed_answer", station_id=conn.station_id, serial=serial,
                 status=status)

    # renewal

    async def due_for_renewal(self, within: dt.timedelta) -> list[tuple[str, str]]:
        """(station id, protocol) of stations whose newest certificate the station accepted
        ends within `within`."""
        async with self._sessions() as session:
            rows = (await session.exec(
                select(StationCertificate.station_id, StationCertificate.serial,
                       StationCertificate.not_after, Station.protocol)
                .join(Station, col(Station.id) == col(StationCertificate.station_id))
                .where(StationCertificate.station_status == "Accepted")
            )).all()
        protocols = {station_id: protocol for station_id, _, _, protocol in rows}
        issued = [IssuedCertificate(station_id, serial, not_after)
                  for station_id, serial, not_after, _ in rows if not_after is not None]
        due = renewal_due(issued, now=self.clock(), within=within)
        return [(station_id, protocols[station_id]) for station_id in due]

    async def ask_for_renewals(
        self, gateway: StationGateway, within: dt.timedelta
    ) -> dict[str, str]:
        """Trigger a new CSR at every station due; its answer (or why none) per station."""
        answers: dict[str, str] = {}
        for station_id, protocol in await self.due_for_renewal(within):
            action, payload = RENEWAL_TRIGGER[protocol]
            try:
                reply = await gateway.call(station_id, action, payload, timeout=30)
                answers[station_id] = str(reply.get("status"))
            except (BusError, CommandError, TimeoutError) as error:
                # Not connected now, or it refused: asked again at the next round.
                answers[station_id] = type(error).__name__
            log.info("ocpp.certificate_renewal_asked", station_id=station_id,
                     answer=answers[station_id])
        return answers

    async def renewal_loop(
        self, gateway: StationGateway, within: dt.timedelta, every_s: float = 6 * 3600
    ) -> None:
        """The duty: a round at start, then every `every_s` (a station that did not renew is
        asked again, until it does or its certificate ends)."""
        while True:
            try:
                await self.ask_for_renewals(gateway, within)
            except Exception:
                log.exception("ocpp.certificate_renewal_failed")
            await asyncio.sleep(every_s)


# InstallCertificate of the CSMS root


class NoCsmsRoot(ValueError):
    """The TLS certificate file does not end with its root, so there is no root to install."""


def csms_root_pem(ca: StationCa, tls_cert_file: Path | None) -> str:
    """The root stations need to trust the TLS listener: the last certificate of the configured
    server chain when it is self-signed, else (self-issued TLS) the station CA. Blocking I/O."""
    if tls_cert_file is None:
        return ca.authority().cert_pem
    root = root_of_chain(tls_cert_file.read_bytes())
    if root is None:
        raise NoCsmsRoot(
            f"{tls_cert_file} does not end with a self-signed root certificate: append the "
            "root to it, so stations can be given the root to trust"
        )
    return cert_pem(root)


def install_root_request(protocol: str, root_pem: str) -> tuple[str, dict[str, Any]]:
    """The InstallCertificate CALL (action, payload) that installs `root_pem` as the CSMS root
    on a station of `protocol`."""
    return "InstallCertificate", {
        "certificateType": ROOT_CERTIFICATE_TYPE[protocol], "certificate": root_pem,
    }
