"""The CLI never invents a database: without VOLTHAUS_DATABASE_URL every command uses the one
file in the user's data folder, whatever the current directory, and says which on stderr.

The commands run through `csms.cli.main.main` in this process, with the environment and the
current directory a person's shell would give them (a subprocess per command costs seconds
here); `volthaus` as a real process is tested per command group elsewhere (tests/cli,
tests/csms)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csms.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


class Shell:
    """Runs commands as from a shell with only HOME set (no VOLTHAUS_*, no XDG_DATA_HOME)."""

    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
        for name in list(os.environ):
            if name.startswith("VOLTHAUS_") or name == "XDG_DATA_HOME":
                monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(home))
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def run(self, args: list[str], cwd: Path) -> tuple[int, str, str]:
        self.monkeypatch.chdir(cwd)
        self.capsys.readouterr()
        code = main(args)
        out, err = self.capsys.readouterr()
        return code, out, err


def test_one_database_whatever_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, first, second = tmp_path / "home", tmp_path / "first", tmp_path / "second"
    for folder in (home, first, second):
        folder.mkdir()
    shell = Shell(home, monkeypatch, capsys)
    expected = home / ".local" / "share" / "volthaus" / "volthaus.db"
    code, _, err = shell.run(["site", "import", str(ROOT / "examples" / "demo-site.yaml")], first)
    assert code == 0, err
    assert f"volthaus: database sqlite:///{expected}" in err
    code, out, err = shell.run(["site", "export", "lindenhof"], second)
    assert code == 0, err
    assert '"lindenhof"' in out  # the site imported from the other folder
    assert expected.is_file()
    assert not (first / "var").exists() and not (second / "var").exists()


def test_xdg_data_home_and_an_explicit_url_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shell = Shell(tmp_path, monkeypatch, capsys)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    code, _, err = shell.run(["db", "upgrade"], tmp_path)
    assert code == 0, err
    assert (tmp_path / "data" / "volthaus" / "volthaus.db").is_file()
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", f"sqlite:///{tmp_path / 'chosen.db'}")
    code, _, err = shell.run(["db", "upgrade"], tmp_path)
    assert code == 0, err
    assert f"volthaus: database sqlite:///{tmp_path / 'chosen.db'}" in err
    assert (tmp_path / "chosen.db").is_file()


def test_a_password_is_never_shown() -> None:
    from csms.settings import Settings

    settings = Settings(database_url="postgresql://volthaus:s3cret@db.example:5432/volthaus")
    assert settings.database_shown == "postgresql://volthaus:***@db.example:5432/volthaus"
