"""`volthaus db upgrade` and `volthaus token create` as a person runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from tests.csms.test_serve import free_port, wait_for_health


def volthaus(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("volthaus")), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, VOLTHAUS_DATABASE_URL=database),
    )


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.db"
    done = volthaus("db", "upgrade", database=f"sqlite:///{path}")
    assert done.returncode == 0, done.stderr
    tables = set(inspect(create_engine(f"sqlite:///{path}")).get_table_names())
    assert {"site", "station", "account", "badge", "journal_entry", "alembic_version"} <= tables


def test_token_create_mints_a_working_scoped_token(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'tokens.db'}"
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
    assert volthaus("site", "import", str(demo), database=database).returncode == 0
    refused = volthaus("token", "create", "--role", "resident", "--site", "lindenhof",
                       database=database)
    assert refused.returncode == 2
    assert "account: a resident token needs --account" in refused.stderr
    assert refused.stdout == ""
    made = volthaus("token", "create", "--role", "resident", "--site", "lindenhof",
                    "--account", "a-01", database=database)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("vh_")

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("volthaus")), "serve", "--http-port", str(port),
         "--ocpp-port", str(free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, VOLTHAUS_DATABASE_URL=database),
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}", server)  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {token}"}
        own = httpx.get(f"http://127.0.0.1:{port}/api/v1/accounts/a-01/wallet", headers=headers)
        assert own.status_code == 200 and own.json()["balance"] == "50.00"
        other = httpx.get(f"http://127.0.0.1:{port}/api/v1/accounts/a-02/wallet", headers=headers)
        assert other.status_code == 403
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("port", ["-1", "http"])
def test_serve_refuses_a_bad_port(tmp_path: Path, port: str) -> None:
    done = volthaus("serve", "--http-port", port, database=f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2
    assert "http_port" in done.stderr or "--http-port" in done.stderr
