"""`volthaus badge ...` end to end: argparse tree, a real SQLite file, an emulated card."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from rfid.emulated_card import EmulatedCard
from rfid.uid import Uid
from tests.rfid.conftest import add_site


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)

    async def prepare() -> None:
        engine = create_engine(url)
        await upgrade_database(engine)
        async with session_factory(engine)() as session:
            await add_site(session, "lindenhof", "a-01")
            await session.commit()
        await engine.dispose()

    asyncio.run(prepare())
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["badge", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "expected"), [
    (("normalize", "04:a2:b3:c4"), "04A2B3C4"),
    (("normalize", "3300106756", "--from", "dec-reversed"), "04A2B3C4"),
    (("normalize", "50355,41476", "--from", "wiegand34"), "04A2B3C4"),
    (("render", "04a2b3c4", "--to", "wiegand26"), "179,41476"),
    (("render", "04911A8A235C80", "--to", "dec"), "01285443079593088"),
])
def test_normalize_and_render(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str
) -> None:
    assert run(capsys, *argv) == (0, expected + "\n", "")


def test_render_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", "04A2B3C4", "--to", "all")
    assert code == 0
    assert "dec-reversed  3300106756\n" in out and len(out.splitlines()) == 6


@pytest.mark.parametrize(("argv", "message"), [
    (("normalize", "04A2G3C4"), "VALUE: 'G' (digit 5) is not a hex digit"),
    (("normalize", "04A2B3C4", "--from", "octal"), "--from: unknown idTag format 'octal'"),
    (("normalize", "179,41476", "--from", "wiegand26"), "VALUE: wiegand26 reveals only 3"),
    (("render", "04A2B3", "--to", "dec"), "UID: 3 bytes"),
    (("render", "04A2B3C4", "--to", "bcd"), "--to: unknown idTag format 'bcd'"),
])
def test_bad_format_input_exits_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_register_block_unblock_list(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "register", "C4B3A204", "--from", "hex-reversed", "--account", "a-01",
               "--label", "Keller 1", "--valid-until", "2027-12-31")[:2] == (
        0, "registered 04A2B3C4 (account a-01, active)\n")
    assert run(capsys, "block", "04a2b3c4", "--lost")[:2] == (
        0, "blocked 04A2B3C4 (account a-01, lost)\n")
    code, out, _ = run(capsys, "list", "--site", "lindenhof")
    assert (code, out) == (0, "04A2B3C4\ta-01\tlost\t..2027-12-31\t-\tKeller 1\n")
    assert run(capsys, "unblock", "04A2B3C4")[0] == 0
    assert run(capsys, "list", "--account", "a-01")[1].split("\t")[2] == "active"


@pytest.mark.parametrize(("argv", "message"), [
    (("register", "04A2B3", "--account", "a-01"), "UID: 3 bytes"),
    (("register", "04A2B3C4", "--account", "nobody"), "--account: unknown account 'nobody'"),
    (("register", "04A2B3C4", "--account", "a-01", "--valid-until", "31.12.2027"),
     "--valid-until: '31.12.2027' is not a date"),
    (("register", "04A2B3C4", "--account", "a-01", "--from", "bcd"),
     "--from: unknown idTag format 'bcd'"),
    (("register", "04A2B3C4", "--account", "a-01", "--max-sessions", "0"),
     "--max-sessions: 0 is below 1"),
    (("block", "DEADBEEF"), "UID: no badge DEADBEEF is registered"),
])
def test_bad_registry_input_exits_2_and_stores_nothing(
    database: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err
    assert run(capsys, "list")[1] == ""


def test_enroll_from_an_emulated_card(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with EmulatedCard(Uid(bytes.fromhex("04911A8A235C80")), atqa=0x0044, sak=0x18) as card:
        code, out, err = run(capsys, "enroll", "--account", "a-01", "--device", card.device,
                             "--label", "Keller 2", "--timeout", "10")
    assert (code, out) == (0, "enrolled 04911A8A235C80 (account a-01, active)\n")
    assert "read UID 04911A8A235C80, ATQA 0044, SAK 18" in err
    assert run(capsys, "list")[1].split("\t")[4] == "MIFARE Classic 4K"


def test_enroll_refuses_desfire(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with EmulatedCard(Uid(bytes.fromhex("04911A8A235C80")), atqa=0x0344, sak=0x20) as card:
        code, _, err = run(capsys, "enroll", "--account", "a-01", "--device", card.device)
    assert code == 2 and "MIFARE DESFire" in err
    assert run(capsys, "list")[1] == ""


def test_enroll_without_reader(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "enroll", "--account", "a-01", "--device", "tty:NOPE0:pn532")
    assert code == 1
    assert "no contactless reader found at 'tty:NOPE0:pn532'" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "enroll", "--account", "nobody", "--device", "tty:NOPE0:pn532")
    assert code == 2 and "--account: unknown account 'nobody'" in err
