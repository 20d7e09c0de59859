"""Reading RFC 9457 problem details (`csms.api.problems`) in tests."""

from __future__ import annotations

from typing import Any

import httpx


def problem(response: httpx.Response) -> dict[str, Any]:
    """The problem details body, after checking its media type and its status member."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code, body
    return body


def problem_lines(response: httpx.Response) -> list[str]:
    """The answer's problems as `path: message` lines (just `message` where the path is
    empty), in order."""
    return [f"{item['path']}: {item['message']}" if item["path"] else item["message"]
            for item in problem(response)["problems"]]
