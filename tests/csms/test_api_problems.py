"""One error body everywhere (RFC 9457 problem details), declared in the OpenAPI for every
status a route gives."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.api.app import build_app
from csms.settings import Settings
from tests.conftest import Api
from tests.csms.problems import problem, problem_lines

DEMO_SITE = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
DEMO_SITE_ID = "lindenhof"


async def test_token_errors_are_problem_details(api: Api) -> None:
    missing = await api.client.get("/api/v1/tokens")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert problem(missing) == {
        "type": "about:blank", "title": "Unauthorized", "status": 401,
        "detail": "missing API token: send `Authorization: Bearer <token>`",
    }
    admin = await api.admin()
    await api.client.post("/api/v1/sites/import", headers=admin, content=DEMO_SITE.read_text())
    installer = await api.token("installer", site=DEMO_SITE_ID)
    denied = await api.client.get("/api/v1/tokens", headers=installer)
    assert problem(denied)["title"] == "Forbidden"
    assert problem(denied)["detail"] == "role 'installer' may not do this; admitted: admin, owner"


async def test_fastapi_validation_errors_name_their_paths(api: Api) -> None:
    admin = await api.admin()
    bad = await api.client.get("/api/v1/audit", headers=admin,
                               params={"limit": "0", "kind": "other"})
    assert bad.status_code == 422
    body = problem(bad)
    assert body["detail"] == "invalid input" and body["title"] == HTTPStatus(422).phrase
    assert [item["path"] for item in body["problems"]] == ["query.kind", "query.limit"]
    assert problem_lines(bad) == [
        "query.kind: Input should be 'staff' or 'money'",
        "query.limit: Input should be greater than or equal to 1",
    ]
    unreadable = await api.client.post("/api/v1/vouchers/batches",
                                       content=b"\xff",
                                       headers=admin | {"content-type": "application/json"})
    assert unreadable.status_code == 400 and problem(unreadable)["detail"]


async def test_unknown_paths_and_our_own_422s(api: Api) -> None:
    admin = await api.admin()
    nowhere = await api.client.get("/api/v1/nowhere", headers=admin)
    assert problem(nowhere)["detail"] == "Not Found"
    required = await api.client.get("/api/v1/sessions/export.csv", headers=admin,
                                    params={"month": "2026-01"})
    assert required.status_code == 422
    assert problem(required)["detail"] == "site: required"
    assert problem_lines(required) == ["site: required"]


async def test_an_unhandled_error_is_a_500_problem(sqlite_engine: AsyncEngine) -> None:
    app = build_app(Settings(database_url="sqlite://"), sqlite_engine)

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/boom")
    assert answer.status_code == 500
    body = problem(answer)
    assert body["title"] == "Internal Server Error" and "secret" not in answer.text


async def test_the_openapi_declares_every_error_as_problem_details(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["ProblemDetails"]["required"]) == {
        "title", "status", "detail"}
    seen = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = {int(code) for code in operation["responses"]}
            errors = {code for code in codes if code >= 400}
            assert 500 in errors, (method, path)
            if path.startswith("/api/"):
                assert {401, 403} <= errors, (method, path)
            if operation.get("parameters") or "requestBody" in operation:
                assert 422 in errors, (method, path)
            if "{" in path:
                assert 404 in errors, (method, path)
            for code in errors:
                content = operation["responses"][str(code)]["content"]
                assert content == {"application/problem+json": {"schema": {
                    "$ref": "#/components/schemas/ProblemDetails"}}}, (method, path, code)
                seen += 1
    assert seen > 100
    commands = schema["paths"]["/api/v1/stations/{station_id}/commands/{action}"]["post"]
    assert {409, 502, 503, 504} <= {int(code) for code in commands["responses"]}
