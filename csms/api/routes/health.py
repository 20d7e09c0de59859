"""Liveness and readiness: no token needed."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from csms.api.deps import DbSession

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(session: DbSession) -> dict[str, str]:
    await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    return {"status": "ok"}
