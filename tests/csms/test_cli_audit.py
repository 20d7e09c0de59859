"""`volthaus` commands that change something leave an audit row, on each database: written with
the change when it commits, on its own when the command refuses; reads leave none."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import pytest
from sqlmodel import col, select

from csms.audit.models import StaffAction
from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database

SITE = ("site: {id: s1, name: S1, timezone: Europe/Vienna, currency: EUR, country: AT}\n"
        "accounts: [{id: a-01, name: A}]\n")


def staff_actions(url: str) -> list[StaffAction]:
    async def read() -> list[StaffAction]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                query = select(StaffAction).order_by(col(StaffAction.id))
                return list((await session.exec(query)).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_cli_changes_are_audited(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database_url)

    async def migrate() -> None:
        engine = create_engine(database_url)
        await upgrade_database(engine)
        await engine.dispose()

    asyncio.run(migrate())
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE)
    assert main(["site", "import", str(site_file)]) == 0
    assert main(["wallet", "topup", "a-01", "20.00", "--receipt", "Q-1", "--staff", "anna"]) == 0
    assert main(["wallet", "topup", "a-01", "abc", "--receipt", "Q-2", "--staff", "anna"]) == 2
    assert main(["wallet", "show", "a-01"]) == 0
    assert main(["token", "create", "--role", "owner", "--site", "s1"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]

    rows = staff_actions(database_url)
    user = getpass.getuser()
    assert [(r.action, r.actor, r.target, r.site_id, r.outcome, r.status, r.committed)
            for r in rows] == [
        ("volthaus site import", f"cli:{user}", f"file={site_file}", None, "ok", 0, True),
        ("volthaus wallet topup", "cli:anna", "account=a-01", None, "ok", 0, True),
        ("volthaus wallet topup", "cli:anna", "account=a-01", None, "refused", 2, False),
        ("volthaus token create", f"cli:{user}", "role=owner", "s1", "ok", 0, True),
    ]
    assert all(r.channel == "cli" and r.role == "cli" and r.token_id is None for r in rows)
    assert token.split("_", 2)[2] not in " ".join(str(r) for r in rows)
