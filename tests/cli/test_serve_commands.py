"""`volthaus db upgrade`, `volthaus token create` and `volthaus serve`'s checks as a person runs
them: one real process per command group, the rest through `csms.cli.main.main` in this process
(a subprocess imports the whole stack: seconds each here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from csms.cli.main import main
from csms.serve import running_node
from tests.conftest import node_settings


def volthaus_process(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("volthaus")), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, VOLTHAUS_DATABASE_URL=database),
    )


Volthaus = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def volthaus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Volthaus:
    """The command in this process, answered as a process would (argparse's own usage errors
    raise SystemExit, which a process turns into its exit code)."""

    def run(*args: str, database: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", *args], code, out, err)

    return run


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.db"
    done = volthaus_process("db", "upgrade", database=f"sqlite:///{path}")
    assert done.returncode == 0, done.stderr
    tables = set(inspect(create_engine(f"sqlite:///{path}")).get_table_names())
    assert {"site", "station", "account", "badge", "journal_entry", "alembic_version"} <= tables


def test_token_create_mints_a_working_scoped_token(volthaus: Volthaus, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'tokens.db'}"
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
    assert volthaus("site", "import", str(demo), database=database).returncode == 0
    # The token group's real process: exit 2 naming the field, nothing on stdout.
    refused = volthaus_process("token", "create", "--role", "resident", "--site", "lindenhof",
                               database=database)
    assert refused.returncode == 2
    assert "account: a resident token needs --account" in refused.stderr
    assert refused.stdout == ""
    made = volthaus("token", "create", "--role", "resident", "--site", "lindenhof",
                    "--account", "a-01", database=database)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("vh_")

    # A node on the same database (in this process: `volthaus serve` as a process is
    # tests/csms/test_serve.py) takes the token for its own account only.
    async def use() -> None:
        async with running_node(node_settings(database)) as node, httpx.AsyncClient(
            base_url=node.http_url, timeout=30
        ) as client:
            headers = {"Authorization": f"Bearer {token}"}
            own = await client.get("/api/v1/accounts/a-01/wallet", headers=headers)
            assert own.status_code == 200 and own.json()["balance"] == "50.00"
            other = await client.get("/api/v1/accounts/a-02/wallet", headers=headers)
            assert other.status_code == 403

    asyncio.run(use())


@pytest.mark.parametrize("port", ["-1", "http"])
def test_serve_refuses_a_bad_port(volthaus: Volthaus, tmp_path: Path, port: str) -> None:
    done = volthaus("serve", "--http-port", port, database=f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2
    assert "http_port" in done.stderr or "--http-port" in done.stderr
