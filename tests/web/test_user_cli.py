"""`volthaus user create` prints a one-time link; bad input exits 2 naming the flag."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from csms.audit.models import StaffAction
from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from csms.inventory.sitefile import import_site_file
from csms.web.models import WebUser

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)
    monkeypatch.setenv("VOLTHAUS_PUBLIC_URL", "https://volthaus.example.org/")

    async def prepare() -> None:
        engine = create_engine(url)
        await upgrade_database(engine)
        await import_site_file(engine, DEMO)
        await engine.dispose()

    asyncio.run(prepare())
    return url


def users(url: str) -> tuple[list[WebUser], list[StaffAction]]:
    async def read() -> tuple[list[WebUser], list[StaffAction]]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as db:
                return (list((await db.exec(select(WebUser))).all()),
                        list((await db.exec(select(StaffAction))).all()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_create_prints_a_set_password_link_and_is_audited(
    database: str, capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["user", "create", "--email", "Keller@Example.org", "--role", "resident",
                 "--site", "lindenhof", "--account", "a-01", "--language", "en"])
    out = capsys.readouterr().out
    assert code == 0
    assert "https://volthaus.example.org/set-password/" in out
    rows, actions = users(database)
    assert [(u.email, u.role, u.language, u.password_hash) for u in rows] == [
        ("keller@example.org", "resident", "en", None)]
    assert any(a.action == "volthaus user create" for a in actions)


@pytest.mark.parametrize(("argv", "flag"), [
    (["--email", "x@example.org", "--role", "resident", "--site", "lindenhof"], "--account"),
    (["--email", "x@example.org", "--role", "owner", "--site", "nowhere"], "--site"),
    (["--email", "not-an-address", "--role", "owner", "--site", "lindenhof"], "--email"),
    (["--email", "x@example.org", "--role", "resident", "--site", "lindenhof",
      "--account", "a-99"], "--account"),
    (["--email", "x@example.org", "--role", "installer"], "--site"),
])
def test_bad_input_exits_2_naming_the_flag_and_creates_nobody(
    database: str, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str,
) -> None:
    code = main(["user", "create", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert f"volthaus user: {flag}:" in err
    assert users(database)[0] == []


def test_an_e_mail_has_one_user(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["user", "create", "--email", "o@example.org", "--role", "owner", "--site", "lindenhof"]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "--email: o@example.org already has a user" in capsys.readouterr().err
