"""Stations over HTTP: OCPP commands from operators, approval, password rotation, switches.

A command's body is the OCPP request payload with the spec's field names, checked against the
`ocpp` library's JSON schema for the station's version before anything is sent; it reaches the
station through the bus, wherever its websocket is held.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from csms.api.deps import DbSession, Principal, require_roles
from csms.api.problems import ApiProblem, invalid, problem_responses
from csms.bus.errors import RequestTimeout, StationNotConnected
from csms.ocpp.admin import (
    ApprovalError,
    StationNotFound,
    approve_station,
    get_station,
    pending_stations,
    set_boot_pending,
    set_send_after_boot,
    station_overview,
)
from csms.ocpp.commands import (
    BadStationReply,
    CommandError,
    InvalidPayload,
    StationGateway,
    StationRejected,
    UnknownAction,
    check_command,
)
from csms.ocpp.security import generate_station_password, hash_station_password
from csms.ocpp.station_certificates import NoCsmsRoot, csms_root_pem, install_root_request

router = APIRouter(tags=["stations"])

Operator = Annotated[Principal, Depends(require_roles("admin", "owner", "installer"))]
Installer = Annotated[Principal, Depends(require_roles("admin", "installer"))]


def _gateway(request: Request) -> StationGateway:
    bus = getattr(request.app.state, "bus", None)
    if bus is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no bus on this node")
    return StationGateway(bus)


async def _station(session: DbSession, principal: Principal, station_id: str) -> Any:
    try:
        station = await get_station(session, station_id)
    except StationNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    principal.ensure_site(station.site_id)
    return station


async def _send(call: Any, station_id: str) -> Any:
    """Map what a command can end with onto HTTP: 409, 504, 502."""
    try:
        return await call
    except StationNotConnected as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except (RequestTimeout, TimeoutError):
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT, f"station {station_id!r} did not answer in time"
        ) from None
    except StationRejected as error:
        raise ApiProblem(
            status.HTTP_502_BAD_GATEWAY,
            f"the station answered CallError {error.code}: {error.description}",
            error="CallError", code=error.code, description=error.description,
            details=error.details,
        ) from None
    except BadStationReply as error:
        raise ApiProblem(
            status.HTTP_502_BAD_GATEWAY, "the station's answer is not valid",
            error.problems, error="InvalidReply",
        ) from None
    except CommandError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None


@router.post(
    "/stations/{station_id}/commands/{action}",
    summary="Send an OCPP command (request payload with the spec's field names)",
    responses={
        200: {"description": "the station's response payload"},
        404: {"description": "unknown station"},
        409: {"description": "station not connected"},
        422: {"description": "action unknown for the station's version, or payload invalid"},
        502: {"description": "the station answered with a CALLERROR or an invalid payload"},
        503: {"description": "this node has no bus to reach stations"},
        504: {"description": "no answer in time"},
    },
)
async def command_route(
    station_id: str,
    action: str,
    request: Request,
    session: DbSession,
    principal: Operator,
    timeout: Annotated[float, Query(gt=0, le=300)] = 30.0,
) -> Any:
    station = await _station(session, principal, station_id)
    await session.close()
    raw = await request.body()
    try:
        payload = json.loads(raw or b"{}")
    except ValueError as error:
        return invalid([f"body: not valid JSON ({error})"])
    try:
        check_command(station.protocol, action, payload)
    except UnknownAction as error:
        return invalid([f"action: {error}"])
    except InvalidPayload as error:
        problems = [
            f"body.{p.path}: {p.message}" if p.path else f"body: {p.message}"
            for p in error.problems
        ]
        return invalid(problems)
    gateway = _gateway(request)
    return await _send(gateway.call(station_id, action, payload, timeout=timeout), station_id)


@router.get("/stations/{station_id}/ocpp", summary="Live OCPP state and connector statuses")
async def overview_route(station_id: str, session: DbSession, principal: Operator) -> Any:
    await _station(session, principal, station_id)
    return await station_overview(session, station_id)


@router.post(
    "/stations/{station_id}/install-root",
    summary="Install the CSMS root certificate on the station (InstallCertificate)",
    responses=problem_responses(
        409, 502, 503, 504,
        why_409="station not connected, or the TLS certificate file does not end with its root",
    ),
)
async def install_root_route(
    station_id: str, request: Request, session: DbSession, principal: Installer
) -> Any:
    """The root the station needs to trust the TLS listener: the station CA when it issued the
    listener's certificates, else the root ending the configured certificate file. The answer
    carries the station's status (Accepted, Rejected, Failed)."""
    station = await _station(session, principal, station_id)
    await session.commit()
    settings = request.app.state.settings
    try:
        root = await asyncio.to_thread(
            csms_root_pem, settings.station_ca(), settings.ocpp_tls_cert_file)
    except NoCsmsRoot as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    action, payload = install_root_request(station.protocol, root)
    reply = await _send(_gateway(request).call(station_id, action, payload), station_id)
    return {"id": station_id, "certificateType": payload["certificateType"],
            "status": reply.get("status")}


@router.get("/stations/pending", summary="Auto-registered stations waiting for approval")
async def pending_route(
    session: DbSession, principal: Installer, site_id: str | None = None
) -> Any:
    if principal.role != "admin":
        site_id = principal.site_id
    return [
        {"id": s.id, "site_id": s.site_id, "protocol": s.protocol, "tariff": s.tariff_id}
        for s in await pending_stations(session, site_id)
    ]


class Approval(BaseModel):
    tariff: str | None = Field(
        default=None,
        description="the site's tariff the station bills with; required for a station that "
        "has none (an auto-registered one)",
    )


@router.post(
    "/stations/{station_id}/approve",
    summary="Accept a Pending station at its next boot, billed with the tariff named",
    responses={422: {"description": "no tariff named for a station without one, or an unknown "
                                    "tariff; nothing was changed"}},
)
async def approve_route(
    station_id: str,
    session: DbSession,
    principal: Installer,
    body: Annotated[Approval | None, Body()] = None,
) -> Any:
    await _station(session, principal, station_id)
    try:
        was_pending = await approve_station(
            session, station_id, body.tariff if body is not None else None
        )
    except ApprovalError as error:
        await session.rollback()
        return invalid([str(error)])
    station = await get_station(session, station_id)
    await session.commit()
    return {"id": station_id, "approved": True, "was_pending": was_pending,
            "tariff": station.tariff_id}


class Switch(BaseModel):
    enabled: bool


@router.put(
    "/stations/{station_id}/send-after-boot",
    summary="Switch off (or on) everything the server sends on its own after a boot",
)
async def send_after_boot_route(
    station_id: str, body: Switch, session: DbSession, principal: Installer
) -> Any:
    await _station(session, principal, station_id)
    await set_send_after_boot(session, station_id, body.enabled)
    await session.commit()
    return {"id": station_id, "send_after_boot": body.enabled}


class BootAnswer(BaseModel):
    status: Literal["Pending", "Accepted"] = Field(
        description="what the station's next boots are answered: Pending holds it "
        "(re-commissioning; commands and TriggerMessage still reach it), Accepted lets it in")


@router.put(
    "/stations/{station_id}/boot-status",
    summary="Answer the station's next boots Pending (re-commissioning) or Accepted again",
)
async def boot_status_route(
    station_id: str, body: BootAnswer, session: DbSession, principal: Installer
) -> Any:
    await _station(session, principal, station_id)
    was = await set_boot_pending(session, station_id, body.status == "Pending")
    await session.commit()
    return {"id": station_id, "boot_status": body.status,
            "was": "Pending" if was else "Accepted"}


class PasswordRotation(BaseModel):
    password: str | None = None


@router.post(
    "/stations/{station_id}/password",
    summary="Rotate the station's Basic-auth password (ChangeConfiguration / SetVariables)",
    responses=problem_responses(
        409, 502, 503, 504,
        why_409="station not connected, or it refused the password",
    ),
)
async def rotate_password_route(
    station_id: str,
    request: Request,
    session: DbSession,
    principal: Installer,
    body: Annotated[PasswordRotation | None, Body()] = None,
) -> Any:
    station = await _station(session, principal, station_id)
    # End the read before waiting on the station: on SQLite an open transaction holds the write
    # lock, and the station's own messages meanwhile need it.
    await session.commit()
    new = body.password if body and body.password else generate_station_password()
    if not 16 <= len(new) <= 40:
        return invalid(["password: 16 to 40 characters"])
    accepted = await _send(
        _gateway(request).run(station_id, "set_password", password=new), station_id
    )
    if not accepted:
        raise HTTPException(status.HTTP_409_CONFLICT, "the station refused the new password")
    # Stored only once the station took it, so neither side is left with a password the
    # other does not know.
    station.password_hash = await asyncio.to_thread(hash_station_password, new)
    await session.commit()
    return {"id": station_id, "password": new}
