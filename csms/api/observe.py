"""What operators see of HTTP: one access log line per request, and the end of every staff
action in the audit log.

`Observe` is plain ASGI middleware: it notes the status as the response starts; once the
route and its dependencies (its database session) are done, it finishes the request's staff
action in the audit log, if `require_roles` opened one (status and outcome; a committed change
already has its row from its own transaction), then writes the access line. The answer never
waits for the audit write (holding it back visibly slowed station commands), so the outcome of
an action shows in the audit a few milliseconds after the client has its answer. The principal
comes from the request state `require_roles` fills; the line names its role and token id,
never the secret.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms.audit.record import PendingAction, finish

log = structlog.get_logger("csms.http")

STATE_PRINCIPAL = "principal"
STATE_AUDIT = "audit"


class Observe:
    def __init__(self, app: ASGIApp, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.app = app
        self.session_factory = session_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        finished = False

        async def finish_audit(code: int) -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            pending: PendingAction | None = state.get(STATE_AUDIT)
            if pending is None:
                return
            try:
                await finish(self.session_factory, pending, code)
            except Exception:
                log.error("audit.write_failed", action=pending.action, status=code,
                          exc_info=True)

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            await finish_audit(500)
            self._access(scope, state, 500, started, failed=True)
            raise
        # The route's dependencies (its database session) are closed by now: SQLite's one
        # writer is free for the audit row.
        await finish_audit(status)
        self._access(scope, state, status, started, failed=False)

    @staticmethod
    def _access(
        scope: Scope, state: dict[str, Any], status: int, started: float, failed: bool
    ) -> None:
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        principal = state.get(STATE_PRINCIPAL)
        if principal is not None:
            fields["role"] = principal.role
            fields["token_id"] = principal.token_id
            if principal.site_id is not None:
                fields["site_id"] = principal.site_id
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        if failed:
            log.error("http.request", exc_info=True, **fields)
        elif status >= 500:
            log.error("http.request", **fields)
        elif status >= 400:
            log.warning("http.request", **fields)
        else:
            log.info("http.request", **fields)
