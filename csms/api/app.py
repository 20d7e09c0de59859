"""`build_app(...)`: the FastAPI application, wired from what the composition root hands it."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.api import problems
from csms.api.docs import mount_docs
from csms.api.observe import Observe
from csms.db.engine import session_factory
from csms.settings import Settings
from csms.web.mount import mount_web

# Resource routers; each module exposes `router`.
ROUTER_MODULES = (
    "csms.api.routes.health",
    "csms.api.routes.sites",
    "csms.api.routes.badges",
    "csms.api.routes.wallet",
    "csms.api.routes.stations",
    "csms.api.routes.reservations",
    "csms.api.routes.sessions",
    "csms.api.routes.audit",
    "csms.api.routes.tokens",
    "csms.api.routes.readers",
    "csms.api.routes.amenities",
    "csms.api.routes.meters",
    "csms.api.routes.load",
    "csms.api.routes.inventory",
)


def build_app(settings: Settings, engine: AsyncEngine, **services: Any) -> FastAPI:
    """The app for one process. `services` (bus, clock, OCPP server, notifier, …) land on
    `app.state` under their names, for routes to reach through `request.app.state`."""
    app = FastAPI(
        title="Volthaus",
        version="0.1.0",
        description="Prepaid backend for shared wallboxes, laundry and apartment meters.",
        docs_url=None,  # served by `mount_docs`, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.state.ready = False  # set by the composition root once it takes traffic (/readyz)
    for name, service in services.items():
        setattr(app.state, name, service)
    app.add_middleware(Observe, session_factory=app.state.session_factory)
    for name in ROUTER_MODULES:
        module = importlib.import_module(name)
        prefix = "" if name.endswith(".health") else "/api/v1"
        app.include_router(module.router, prefix=prefix)
    problems.install(app)
    problems.declare(app)
    mount_docs(app)
    mount_web(app)
    return app
