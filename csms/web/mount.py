"""`mount_web(app)`: the pages, their static files, and error answers as pages.

Each module in `PAGE_MODULES` exposes `router`, and may expose `NAV` (menu entries:
`(roles, path, catalog key)`) and `PAGES` (`(role, path)` of its parameterless pages, which the
tests render in every language).
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from csms.api.problems import http_problem
from csms.web.guard import FormExpired, PageForbidden, SignInRequired, sign_in_location
from csms.web.render import render

PAGE_MODULES = (
    "csms.web.pages.signin",
    "csms.web.pages.resident",
    "csms.web.pages.owner",
    "csms.web.pages.installer",
)

STATIC = Path(__file__).with_name("static")
# Paths that are not pages: their errors stay problem details (JSON).
_NOT_PAGES = ("/api/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics", "/static/")


@cache
def page_modules() -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(name) for name in PAGE_MODULES)


def navigation() -> list[tuple[tuple[str, ...], str, str]]:
    return [entry for module in page_modules() for entry in getattr(module, "NAV", [])]


def listed_pages() -> list[tuple[str, str]]:
    return [entry for module in page_modules() for entry in getattr(module, "PAGES", [])]


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(_NOT_PAGES)


async def _sign_in_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    return RedirectResponse(sign_in_location(error.next_path), status_code=303)


async def _forbidden(request: Request, error: Exception) -> Response:
    return render(request, "error.html", {"kind": "forbidden"}, status=403)


async def _form_expired(request: Request, error: Exception) -> Response:
    return render(request, "error.html", {"kind": "csrf"}, status=403)


async def _http_error(request: Request, error: Exception) -> Response:
    """A page's 403/404 (from a scope check shared with the API) as a page; the API's as JSON."""
    assert isinstance(error, StarletteHTTPException)
    if is_page(request) and error.status_code in (403, 404):
        kind = "forbidden" if error.status_code == 403 else "not_found"
        if not hasattr(request.state, "lang"):
            request.state.lang = "de"
        return render(request, "error.html", {"kind": kind, "detail": error.detail},
                      status=error.status_code)
    return await http_problem(request, error)


def mount_web(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for module in page_modules():
        app.include_router(module.router, include_in_schema=False)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(PageForbidden, _forbidden)
    app.add_exception_handler(FormExpired, _form_expired)
    app.add_exception_handler(StarletteHTTPException, _http_error)
