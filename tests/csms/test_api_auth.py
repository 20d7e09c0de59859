"""API auth over a real socket: 401 without or with a bad token, 403 outside role or scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.routing import APIRoute

from tests.conftest import Api
from tests.csms.problems import problem


async def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert (await api.client.get("/openapi.json")).json()["info"]["title"] == "Volthaus"


async def test_every_api_route_declares_its_roles(api: Api) -> None:
    # FastAPI keeps included routers apart from `app.routes`: read each module's own router.
    import importlib

    from csms.api.app import ROUTER_MODULES

    checked, undeclared = 0, []
    for name in ROUTER_MODULES:
        if name.endswith(".health"):
            continue
        for route in importlib.import_module(name).router.routes:
            if isinstance(route, APIRoute):
                checked += 1
                calls = [dep.call for dep in route.dependant.dependencies]
                if not any(hasattr(call, "admitted_roles") for call in calls):
                    undeclared.append(route.path)
    assert undeclared == []
    assert checked >= 30


async def test_first_start_mints_an_admin_token(api: Api) -> None:
    token = api.node.first_admin_token
    assert token is not None and token.startswith("vh_")


async def test_missing_bad_and_out_of_scope_tokens(api: Api) -> None:
    admin = await api.admin()
    await api.client.post(
        "/api/v1/sites/import",
        content="site: {id: s1, name: S1, timezone: Europe/Vienna, currency: EUR, country: AT}\n"
        "accounts: [{id: s1-a, name: A}]",
        headers=admin,
    )
    path = "/api/v1/sites/s1/export"
    missing = await api.client.get(path)
    assert missing.status_code == 401 and "missing API token" in problem(missing)["detail"]
    forged = await api.client.get(path, headers={"Authorization": "Bearer vh_abc_def"})
    assert forged.status_code == 401 and "invalid" in problem(forged)["detail"]
    tampered = admin["Authorization"][:-2] + "xx"
    assert (await api.client.get(path, headers={"Authorization": tampered})).status_code == 401
    resident = await api.token("resident", site="s1", account="s1-a")
    denied = await api.client.get(path, headers=resident)
    assert denied.status_code == 403 and "role 'resident'" in problem(denied)["detail"]
    owner = await api.token("owner", site="s1")
    assert (await api.client.get(path, headers=owner)).status_code == 200
    assert (await api.client.get(path, headers=admin)).status_code == 200


async def test_tokens_are_stored_hashed_and_scopes_are_checked(api: Api) -> None:
    from sqlalchemy import text

    from csms.auth.tokens import TokenScopeError, create_token
    from csms.db.engine import session_factory

    headers = await api.admin()
    secret = headers["Authorization"].split("_", 2)[2]
    async with session_factory(api.node.engine)() as session:
        stored = (await session.exec(text("SELECT secret_sha256 FROM api_token"))).all()  # type: ignore[call-overload]
        assert all(secret not in row[0] for row in stored)
        with pytest.raises(TokenScopeError, match="site: a owner token needs --site"):
            await create_token(session, role="owner", now=datetime.now(UTC))
        with pytest.raises(TokenScopeError, match="account: a resident token needs --account"):
            await create_token(session, role="resident", site_id="x", now=datetime.now(UTC))
        with pytest.raises(TokenScopeError, match="role: must be one of"):
            await create_token(session, role="root", now=datetime.now(UTC))
