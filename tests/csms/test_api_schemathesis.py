"""Schemathesis over the whole API of a running node with the demo site and an admin token:
every operation, positive and negative input, a fixed seed and a bounded number of examples.
Zero 5xx answers, and every answer as the OpenAPI declares it (status code, media type,
headers, body schema)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.csms.test_api_problems import DEMO_SITE

CHECKS = ",".join((
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
))
SEED = 13
MAX_EXAMPLES = 8


@pytest.mark.timeout(300)
async def test_every_answer_is_as_declared(api: Api, tmp_path: Path) -> None:
    admin = await api.admin()
    imported = await api.client.post(
        "/api/v1/sites/import", content=DEMO_SITE.read_text(), headers=admin
    )
    assert imported.status_code == 200, imported.text
    report = tmp_path / "schemathesis.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api.node.http_url}/openapi.json",
        "--header", f"Authorization:{admin['Authorization']}",
        "--checks", CHECKS, "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--no-shrink", "--suppress-health-check", "all", "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
    ]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    started = time.perf_counter()
    # A subprocess: this event loop keeps serving the node while schemathesis runs.
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env=env,
    )
    output, _ = await process.communicate()
    took = time.perf_counter() - started
    text = output.decode(errors="replace")
    document = json.loads(report.read_text())
    operations, cases = document["operations"], document["test_cases"]
    print(f"schemathesis: {operations['tested']} operations, {cases['generated']} test cases, "
          f"{took:.1f} s")
    assert process.returncode == 0, text[-20000:]
    assert document["failures"] == [] and document["errors"] == [], text[-20000:]
    assert operations["tested"] == operations["total"] and operations["errored"] == 0
    assert cases["generated"] >= 10 * operations["tested"]
