"""`volthaus price`: through `csms.cli.main.main` in this process, and once as a real process
(the exit 2 naming the field that a shell sees)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from csms.cli.main import main

VOLTHAUS = Path(sys.executable).parent / "volthaus"

TARIFF_YAML = """\
id: wallbox-2026
name: Wallbox 2026
currency: EUR
vat_percent: "20"
timezone: Europe/Vienna
components:
  - dimension: time
    interval_s: 60
    intervals: [[2, "0.00"], [3, 0.1251], [4, "0.0417"]]
  - dimension: energy
    interval_wh: 100
    intervals: [[2, "0.00"], [3, 0.75], [4, "0.25"]]
"""

USAGE_JSON = {"samples": [
    {"at": "2026-03-02T17:30:00+01:00", "energy_wh": 0},
    {"at": "2026-03-02T18:30:00+01:00", "energy_wh": 11000},
]}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(TARIFF_YAML)
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps(USAGE_JSON))
    return tariff, usage


def price_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VOLTHAUS), "price", *map(str, args)], capture_output=True,
                          text=True, timeout=60, check=False)


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """`volthaus price ...` in this process (a process per call costs seconds here), answered as
    a process would."""

    def price(*args: str | Path) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main(["price", *map(str, args)])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", "price", *map(str, args)], code, out, err)

    return price


def test_prints_the_bill_as_json(run: Run, files: tuple[Path, Path]) -> None:
    done = run(*files)
    assert done.returncode == 0, done.stderr
    bill = json.loads(done.stdout)
    assert (bill["currency"], bill["net"], bill["vat"], bill["gross"]) == (
        "EUR", "5.2520", "1.0480", "6.30")
    time_lines = [line for line in bill["lines"] if line["dimension"] == "time"]
    assert sum(line["quantity"] for line in time_lines) == 3600
    assert [line["net"] for line in time_lines] == ["0.0000", "0.0000", "0.1251", "2.3769"]
    assert done.stderr == ""


def test_explain_prints_a_table(run: Run, files: tuple[Path, Path]) -> None:
    done = run(*files, "--explain")
    assert done.returncode == 0, done.stderr
    assert "3420 s" in done.stdout and "0.0417/60 s" in done.stdout
    assert done.stdout.splitlines()[-1].split() == ["gross", "(EUR)", "6.30"]


def test_curve_prints_cost_against_minutes_and_kwh(run: Run, files: tuple[Path, Path]) -> None:
    done = run(*files, "--curve", "time")
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0] == "minutes,at,net,gross"
    # at 2 min: time still free, 366.67 Wh started four 100 Wh intervals: 0.075 + 0.025
    assert rows[3] == "2,2026-03-02T17:32:00+01:00,0.1000,0.12"
    assert rows[4] == "3,2026-03-02T17:33:00+01:00,0.2751,0.33"
    assert rows[-1] == "60,2026-03-02T18:30:00+01:00,5.2520,6.30"
    done = run(*files, "--curve", "energy", "--step", "1000")
    rows = done.stdout.splitlines()
    assert rows[0] == "kwh,at,net,gross" and rows[-1].startswith("11,") and len(rows) == 13


def test_yaml_usage_and_json_tariff_work_too(tmp_path: Path) -> None:
    tariff = tmp_path / "t.json"
    tariff.write_text('{"id": "t", "currency": "EUR", "vat_percent": 20, "components": '
                      '[{"dimension": "energy", "tiers": [{"from_wh": 0, "price": 0.1251}]}]}')
    usage = tmp_path / "u.yaml"
    usage.write_text("samples:\n  - {at: 2026-03-02T17:30:00+01:00, energy_wh: 0}\n"
                     "  - {at: '2026-03-02T18:30:00+01:00', energy_wh: 1000}\n")
    assert main(["price", str(tariff), str(usage)]) == 0


def test_main_entry_point_prints_json(files: tuple[Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["price", str(files[0]), str(files[1])]) == 0
    assert json.loads(capsys.readouterr().out)["gross"] == "6.30"


BAD_CASES = [
    ("unquoted time", TARIFF_YAML.replace("components:", "components:\n  - dimension: flat\n"
                                          "    price: 1\n    when: {from: 22:00, to: '06:00'}"),
     None, "tariff.yaml: components[0].when.from: must be a quoted \"HH:MM\" string"),
    ("unknown key", TARIFF_YAML + "colour: red\n", None, "tariff.yaml: colour: unknown key"),
    ("missing field", TARIFF_YAML.replace("currency: EUR\n", ""), None,
     "tariff.yaml: currency: required"),
    ("tiers out of order", TARIFF_YAML.replace(
        "  - dimension: energy\n    interval_wh: 100\n    intervals: [[2, \"0.00\"], [3, 0.75], "
        "[4, \"0.25\"]]\n",
        "  - dimension: energy\n    tiers: [{from_wh: 0, price: 1}, {from_wh: 0, price: 2}]\n"),
     None, "tariff.yaml: components[1].tiers[1].from_wh: tiers out of order"),
    ("step below one", TARIFF_YAML.replace(
        "  - dimension: energy\n    interval_wh: 100\n    intervals: [[2, \"0.00\"], [3, 0.75], "
        "[4, \"0.25\"]]\n",
        "  - dimension: energy\n    tiers: [{from_wh: 0, price: 1}]\n    step_wh: 0\n"),
     None, "tariff.yaml: components[1].step_wh: must be >= 1, got 0"),
    ("timezone required", TARIFF_YAML.replace("timezone: Europe/Vienna\n", "").replace(
        "components:", "components:\n  - {dimension: flat, price: 1, when: {days: [mon]}}"),
     None, "tariff.yaml: timezone: required because a component has `when`"),
    ("negative quantity", None, {"samples": [{"at": "2026-03-02T17:30:00+01:00",
                                              "energy_wh": -1}]},
     "usage.json: samples[0].energy_wh: must be >= 0, got -1"),
    ("not increasing", None, {"samples": [
        {"at": "2026-03-02T17:30:00+01:00", "energy_wh": 0},
        {"at": "2026-03-02T16:30:00+01:00", "energy_wh": 0}]},
     "usage.json: samples[1].at: 2026-03-02T16:30:00+01:00 is not after"),
    ("energy decreasing", None, {"samples": [
        {"at": "2026-03-02T17:30:00+01:00", "energy_wh": 5},
        {"at": "2026-03-02T18:30:00+01:00", "energy_wh": 4}]},
     "usage.json: samples[1].energy_wh: decreases from 5 to 4"),
    ("no offset", None, {"samples": [{"at": "2026-03-02T17:30:00", "energy_wh": 0}]},
     "usage.json: samples[0].at: timestamp without UTC offset"),
    ("float price text kept", TARIFF_YAML.replace("0.1251", "abc"), None,
     "tariff.yaml: components[0].intervals[1][1]: not a decimal number: 'abc'"),
]


@pytest.mark.parametrize(("tariff_text", "usage_doc", "message"),
                         [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES])
def test_invalid_input_exits_2_naming_the_field_and_prints_nothing(
    run: Run, tmp_path: Path, tariff_text: str | None, usage_doc: object, message: str
) -> None:
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(tariff_text or TARIFF_YAML)
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps(usage_doc or USAGE_JSON))
    done = run(tariff, usage)
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


def test_a_real_process_exits_2_naming_the_field(files: tuple[Path, Path]) -> None:
    files[0].write_text(TARIFF_YAML + "colour: red\n")
    done = price_process(*files)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "tariff.yaml: colour: unknown key" in done.stderr


def test_unreadable_and_unparsable_files_exit_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["price", str(tmp_path / "missing.yaml"), str(broken)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "missing.yaml: cannot read" in err
    assert "broken.json: invalid JSON at line 1, column 2" in err


def test_every_problem_of_both_files_is_reported(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tariff = tmp_path / "t.yaml"
    tariff.write_text("id: x\ncurrency: EUR\ncomponents: []\n")
    usage = tmp_path / "u.json"
    usage.write_text('{"samples": []}')
    assert main(["price", str(tariff), str(usage)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"volthaus price: {tariff}: vat_percent: required",
        f"volthaus price: {tariff}: components: must be a non-empty list",
        f"volthaus price: {usage}: samples: must be a non-empty list",
    ]
