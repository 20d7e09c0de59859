"""What operators see: an access line per HTTP request (a 403 and a 500 among them), tracebacks
in JSON error lines (refused websocket handshakes: tests/csms/ocpp/test_ocpp_handshake.py).
Real sockets, the production log configuration, the lines parsed back from JSON."""

from __future__ import annotations

import logging

import structlog

from tests.conftest import Api, JsonLogs

SITE = "site: {id: s1, name: S1, timezone: Europe/Vienna, currency: EUR, country: AT}\n" \
    "accounts: [{id: a-01, name: A}]"


async def test_access_lines_name_principal_status_and_duration(
    api: Api, json_logs: JsonLogs
) -> None:
    admin = await api.admin()
    assert (await api.client.post("/api/v1/sites/import", content=SITE,
                                  headers=admin)).status_code == 200
    resident = await api.token("resident", site="s1", account="a-01")
    assert (await api.client.get("/api/v1/sites/s1/export", headers=resident)).status_code == 403
    assert (await api.client.get("/api/v1/sites/s1/export")).status_code == 401
    assert (await api.client.get("/healthz")).status_code == 200

    lines = json_logs.lines("http.request")
    by_status = {(line["method"], line["path"], line["status"]): line for line in lines}
    imported = by_status[("POST", "/api/v1/sites/import", 200)]
    assert imported["role"] == "admin" and imported["level"] == "info"
    assert imported["token_id"] == admin["Authorization"].split("_")[1]
    assert isinstance(imported["duration_ms"], float) and imported["duration_ms"] >= 0
    denied = by_status[("GET", "/api/v1/sites/s1/export", 403)]
    assert denied["role"] == "resident" and denied["level"] == "warning"
    assert denied["site_id"] == "s1" and "timestamp" in denied
    anonymous = by_status[("GET", "/api/v1/sites/s1/export", 401)]
    assert "role" not in anonymous and "token_id" not in anonymous
    assert ("GET", "/healthz", 200) in by_status
    # The secret half of a token never reaches the log.
    for headers in (admin, resident):
        assert headers["Authorization"].split("_", 2)[2] not in json_logs.text()


async def test_a_500_is_logged_with_its_traceback(api: Api, json_logs: JsonLogs) -> None:
    def explode() -> None:
        raise RuntimeError("boom in a route")

    api.node.app.add_api_route("/explode", explode)
    answer = await api.client.get("/explode")
    assert answer.status_code == 500

    [line] = json_logs.lines("http.request")
    assert (line["path"], line["status"], line["level"]) == ("/explode", 500, "error")
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: boom in a route" in line["exception"]
    assert "exc_info" not in line
    # uvicorn's own report (a standard-library logger) carries the traceback too.
    uvicorn_lines = [entry for entry in json_logs.lines() if entry.get("level") == "error"
                     and entry is not line and "exception" in entry]
    assert any("boom in a route" in entry["exception"] for entry in uvicorn_lines)


def test_warning_with_exc_info_carries_the_traceback(json_logs: JsonLogs) -> None:
    try:
        {}["missing"]
    except KeyError:
        structlog.get_logger("csms.test").warning("thing.failed", station_id="WB-1",
                                                  exc_info=True)
        logging.getLogger("some.library").error("library failed", exc_info=True)
    ours, theirs = json_logs.lines("thing.failed"), json_logs.lines("library failed")
    assert "KeyError: 'missing'" in ours[0]["exception"] and ours[0]["station_id"] == "WB-1"
    assert "KeyError: 'missing'" in theirs[0]["exception"]
