"""The CLI never invents a database: without VOLTHAUS_DATABASE_URL every command uses the one
file in the user's data folder, whatever the current directory, and says which on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOLTHAUS = Path(sys.executable).with_name("volthaus")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VOLTHAUS), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VOLTHAUS_") and k != "XDG_DATA_HOME"}
    env["HOME"] = str(home)
    return env


def test_one_database_whatever_the_directory(tmp_path: Path) -> None:
    home, first, second = tmp_path / "home", tmp_path / "first", tmp_path / "second"
    for folder in (home, first, second):
        folder.mkdir()
    env = clean_env(home)
    expected = home / ".local" / "share" / "volthaus" / "volthaus.db"
    imported = run(["site", "import", str(ROOT / "examples" / "demo-site.yaml")], first, env)
    assert imported.returncode == 0, imported.stderr
    assert f"volthaus: database sqlite:///{expected}" in imported.stderr
    exported = run(["site", "export", "lindenhof"], second, env)
    assert exported.returncode == 0, exported.stderr
    assert '"lindenhof"' in exported.stdout  # the site imported from the other folder
    assert expected.is_file()
    assert not (first / "var").exists() and not (second / "var").exists()


def test_xdg_data_home_and_an_explicit_url_are_honoured(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    done = run(["db", "upgrade"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "volthaus" / "volthaus.db").is_file()
    env["VOLTHAUS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'chosen.db'}"
    done = run(["db", "upgrade"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert f"volthaus: database sqlite:///{tmp_path / 'chosen.db'}" in done.stderr
    assert (tmp_path / "chosen.db").is_file()


def test_a_password_is_never_shown() -> None:
    from csms.settings import Settings

    settings = Settings(database_url="postgresql://volthaus:s3cret@db.example:5432/volthaus")
    assert settings.database_shown == "postgresql://volthaus:***@db.example:5432/volthaus"
