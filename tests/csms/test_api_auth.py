"""API auth over a real socket: 401 without or with a bad token, 403 outside role or scope."""

from __future__ import annotations

from fastapi.routing import APIRoute

from tests.conftest import Api


async def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert (await api.client.get("/openapi.json")).json()["info"]["title"] == "Volthaus"


async def test_every_api_route_declares_its_roles(api: Api) -> None:
    undeclared = []
    for route in api.node.app.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/api/"):
            calls = [dep.call for dep in route.dependant.dependencies]
            if not any(hasattr(call, "admitted_roles") for call in calls):
                undeclared.append(route.path)
    assert undeclared == []


async def test_first_start_mints_an_admin_token(api: Api) -> None:
    token = api.node.first_admin_token
    assert token is not None and token.startswith("vh_")
