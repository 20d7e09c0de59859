"""One error body for every 4xx and 5xx the API gives: RFC 9457 problem details.

`application/problem+json` with `type`, `title`, `status` and `detail`; input with problems
(422) adds `problems`, every one with its `path` (`amount`, `body.type`, `query.limit`) and
`message`. Some answers carry extension members (`code`, `reason`, `locked_until`, ...).

Routes raise `ApiProblem` (or FastAPI's `HTTPException`, or return `problem_response(...)`);
the handlers `install(app)` registers turn those, FastAPI's own `RequestValidationError` and
any unhandled exception (500) into this body. `declare(app)` writes every operation's error
answers into the OpenAPI in one place: 401 and 403 where it checks a token, 422 where it takes
input, 404 where its path names something, 500 everywhere, plus whatever the route declares
itself (`responses=problem_responses(409, ...)` on a route or its router); every one with the
`ProblemDetails` schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("csms.http")

PROBLEM_JSON = "application/problem+json"
INVALID_INPUT = "invalid input"
SITE_AMBIGUOUS = "the account id is on several sites: name one with `site`"


class Problem(BaseModel):
    """One thing wrong with the input, at its path."""

    path: str = Field(description="where: `amount`, `body.type`, `query.limit`; `` for the whole")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="about:blank: the status says it all")
    title: str = Field(description="the status's phrase")
    status: int
    detail: str = Field(description="what went wrong, for a person")
    problems: list[Problem] | None = Field(
        default=None, description="input with problems (422): every one with its path"
    )


Problems = Iterable[str | tuple[str, str]]


def _problem(item: str | tuple[str, str]) -> dict[str, str]:
    """A problem from `(path, message)` or from our `"path: message"` text."""
    if isinstance(item, tuple):
        path, message = item
    else:
        path, sep, message = item.partition(": ")
        if not sep or " " in path:
            path, message = "", item
    return {"path": path, "message": message}


def problem_body(
    status: int, detail: str, problems: Problems | None = None, **extensions: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank", "title": _title(status), "status": status, "detail": detail,
    }
    if problems is not None:
        body["problems"] = [_problem(item) for item in problems]
    for name, value in extensions.items():
        body.setdefault(name, value)
    return body


def problem_response(
    status: int,
    detail: str,
    problems: Problems | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, problems, **extensions), status, headers=headers,
        media_type=PROBLEM_JSON,
    )


def invalid(problems: Problems) -> JSONResponse:
    """The 422 answer for input with problems: every one with its path."""
    return problem_response(422, INVALID_INPUT, problems)


class ApiProblem(StarletteHTTPException):
    """An error answer with its detail, problems and extension members."""

    def __init__(
        self,
        status: int,
        detail: str,
        problems: Problems | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status, detail, dict(headers) if headers else None)
        self.problems = list(problems) if problems is not None else None
        self.extensions = extensions


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def http_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if isinstance(error, ApiProblem):
        return problem_response(error.status_code, error.detail, error.problems, error.headers,
                                **error.extensions)
    detail = str(error.detail)
    # A plain 422 names its field in its text (`site: required`): that is its one problem.
    problems = [detail] if error.status_code == 422 else None
    return problem_response(error.status_code, detail, problems, headers=error.headers)


def _location(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [(_location(item.get("loc", ())), str(item.get("msg", ""))) for item in
                error.errors()]
    return invalid(problems)


async def _server_error(request: Request, error: Exception) -> JSONResponse:
    # The traceback is logged by `csms.api.observe.Observe` with the access line.
    return problem_response(500, "internal error; the operator's log has the details")


def install(app: FastAPI) -> None:
    """Every error answer of `app` as problem details."""
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)


# --- OpenAPI ----------------------------------------------------------------------------------

_REF = {"$ref": "#/components/schemas/ProblemDetails"}

_WHY = {
    400: "the body could not be read",
    401: "no API token, or an invalid or revoked one",
    403: "the token's role or scope does not admit this",
    404: "nothing of that name (here)",
    409: "conflicts with the current state",
    422: "input with problems: every one with its path",
    500: "internal error",
    # A station reached through the bus (commands, certificates, reservations).
    502: "the station answered with a CALLERROR or an invalid payload",
    503: "this node has no bus to reach stations",
    504: "no answer in time",
}


def problem_responses(*codes: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own error answers; `why` gives a description per code
    (`why_409="station not connected"`)."""
    return {
        code: {"description": why.get(f"why_{code}", _WHY.get(code, _title(code))),
               "content": {PROBLEM_JSON: {"schema": _REF}}}
        for code in codes
    }


_METHODS = frozenset({"get", "put", "post", "patch", "delete", "head", "options"})


def _error_codes(operation: dict[str, Any]) -> set[int]:
    """The error answers an operation can give: 401 and 403 where it checks a token, 422
    where it takes input (400 too for a body), 404 where its path names something, 500 always,
    and whatever the route declares itself."""
    codes = {500}
    if operation.get("security"):
        codes |= {401, 403}
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        codes.add(422)
    if "requestBody" in operation:
        codes.add(400)  # FastAPI's answer to a body it cannot decode (not UTF-8)
    if any(parameter.get("in") == "path" for parameter in parameters):
        codes.add(404)
    codes |= {int(code) for code in operation.get("responses", {})
              if code.isdigit() and int(code) >= 400}
    return codes


def declare(app: FastAPI) -> None:
    """Serve the OpenAPI with every operation's error answers as `ProblemDetails`, in place of
    FastAPI's own 422 shape (never sent)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description,
            routes=app.routes,
        )
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if method not in _METHODS:
                    continue
                responses = operation.setdefault("responses", {})
                for code in sorted(_error_codes(operation)):
                    declared = responses.get(str(code), {})
                    description = declared.get("description")
                    if not description or description == "Validation Error":
                        description = _WHY.get(code, _title(code))
                    responses[str(code)] = {
                        "description": description,
                        "content": {PROBLEM_JSON: {"schema": _REF}},
                    }
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        detail = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(detail.pop("$defs", {}))
        schemas["ProblemDetails"] = detail
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
