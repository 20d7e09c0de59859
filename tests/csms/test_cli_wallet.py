"""`volthaus wallet ...` end to end on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from csms.cli.main import main
from csms.db.engine import create_engine, session_factory
from csms.db.migrate import upgrade_database
from tests.wallet.conftest import seed_site


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOLTHAUS_DATABASE_URL", url)

    async def prepare() -> None:
        engine = create_engine(url)
        await upgrade_database(engine)
        await seed_site(session_factory(engine))
        await engine.dispose()

    asyncio.run(prepare())
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["wallet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_desk_topup_show_ledger_and_correction(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "topup", "a-01", "20.00", "--receipt", "Q-1", "--staff", "anna")
    assert code == 0 and "topped up" in out and "balance 20.00" in out
    code, out, _ = run(capsys, "topup", "a-01", "20.00", "--receipt", "Q-1", "--staff", "anna")
    assert code == 0 and "already booked" in out
    code, out, _ = run(capsys, "correct", "a-01", "-2.50", "--reason", "double wash",
                       "--staff", "anna", "--key", "T-17")
    assert code == 0 and "corrected" in out
    code, out, _ = run(capsys, "show", "a-01")
    assert code == 0 and "balance    €17.50" in out and "available  €17.50" in out
    code, out, _ = run(capsys, "ledger", "a-01", "--limit", "1")
    assert code == 0 and "correction" in out and "-2.5000" in out and "more: --before" in out


@pytest.mark.parametrize(("argv", "message"), [
    (("topup", "a-01", "twenty", "--receipt", "Q", "--staff", "x"), "AMOUNT: 'twenty' is not"),
    (("topup", "a-01", "-5", "--receipt", "Q", "--staff", "x"), "AMOUNT: must be greater"),
    (("topup", "a-01", "5", "--receipt", " ", "--staff", "x"), "--receipt: a receipt number"),
    (("topup", "zz-99", "5", "--receipt", "Q", "--staff", "x"), "ACCOUNT: unknown account"),
    (("correct", "a-01", "1", "--reason", " ", "--staff", "x", "--key", "k"), "--reason:"),
    (("vouchers", "create", "--site", "lindenhof", "--value", "10", "--count", "0",
      "--expires", "2030-01-01", "--reference", "b"), "--count: must be a whole number"),
    (("vouchers", "create", "--site", "lindenhof", "--value", "10", "--count", "2",
      "--expires", "soon", "--reference", "b"), "--expires: 'soon' is not a date"),
])
def test_bad_input_exits_2_naming_the_argument(
    database: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err, err
    _, out, _ = run(capsys, "show", "a-01")
    assert "balance    €0.00" in out


def test_policy_vouchers_and_emergency(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('emergency_credit: "5.00"\nfriendly: {weekends: true}\n')
    code, out, _ = run(capsys, "policy", "patch", "a-01", str(policy))
    assert code == 0 and json.loads(out)["emergency_credit"] == "5.00"
    policy.write_text('mode: later\nstart_minimum: "x"\n')
    code, _, err = run(capsys, "policy", "set", "a-01", str(policy))
    assert code == 2 and "mode: must be one of" in err and "start_minimum: not a decimal" in err
    code, out, _ = run(capsys, "emergency", "a-01")
    assert code == 0 and "available 5.00" in out
    code, _, err = run(capsys, "emergency", "a-02")
    assert code == 1 and "no_emergency_credit" in err

    code, out, _ = run(capsys, "vouchers", "create", "--site", "lindenhof", "--value", "10.00",
                       "--count", "2", "--expires", "2099-12-31", "--reference", "print-1")
    assert code == 0
    codes = [" ".join(line.split()[:5]) for line in out.splitlines()]
    assert len(codes) == 2 and all(len(c.replace(" ", "")) == 19 for c in codes)
    code, _, err = run(capsys, "vouchers", "create", "--site", "lindenhof", "--value", "10.00",
                       "--count", "2", "--expires", "2099-12-31", "--reference", "print-1")
    assert code == 2 and "exists already" in err
    code, out, _ = run(capsys, "vouchers", "redeem", "a-02", codes[0])
    assert code == 0 and "redeemed: 10.00" in out
    code, _, err = run(capsys, "vouchers", "redeem", "a-01", codes[0])
    assert code == 1 and "already_redeemed" in err
