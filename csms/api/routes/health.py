"""Liveness, readiness and metrics for operators and load balancers: no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from csms.api.deps import DbSession
from csms.metrics import scrape

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(session: DbSession) -> dict[str, str]:
    """Alive: the process answers and reaches its database."""
    await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    return {"status": "ok"}


def _bus_running(request: Request) -> bool:
    bus = getattr(request.app.state, "bus", None)
    return bus is None or bool(getattr(bus, "running", True))


@router.get("/readyz", responses={503: {"description": "not taking traffic (starting, "
                                               "draining, or the bus is down)"}})
async def readyz(request: Request, session: DbSession) -> JSONResponse:
    """Ready: migrations applied, bus connected, listeners up and not draining. A load
    balancer sends stations and requests only to ready nodes."""
    await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    ready = bool(getattr(request.app.state, "ready", False)) and _bus_running(request)
    return JSONResponse({"status": "ready" if ready else "not ready"},
                        status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}},
                             "description": "Prometheus text exposition"}})
async def metrics(request: Request, session: DbSession) -> Response:
    ocpp = getattr(request.app.state, "ocpp", None)
    body = await scrape(session, connected=ocpp.connected_count if ocpp is not None else 0,
                        ready=bool(getattr(request.app.state, "ready", False)),
                        poll_overruns=getattr(getattr(request.app.state, "meter_poller", None),
                                              "overruns", 0),
                        duty_held=getattr(getattr(request.app.state, "duties", None),
                                          "holding", False))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
