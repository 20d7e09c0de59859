"""The site file: validate whole, upsert in one transaction, export back losslessly; bad files
change nothing and name every problem (on SQLite and PostgreSQL, via CLI and HTTP)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.cli.main import main
from csms.db.engine import session_factory
from csms.db.tables import metadata
from csms.documents import read_document
from csms.inventory.sitefile import (
    SiteFileError,
    export_site,
    import_site,
    import_site_file,
    site_file_schema,
)
from tests.conftest import Api
from tests.csms.problems import problem_lines

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


def demo() -> dict[str, Any]:
    return copy.deepcopy(read_document(DEMO))


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that a refused import changed nothing."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as connection:
        for table in metadata().sorted_tables:
            result = await connection.execute(text(f'SELECT * FROM "{table.name}"'))
            rows[table.name] = sorted((tuple(map(str, row)) for row in result), key=str)
    return rows


async def exported(engine: AsyncEngine, site_id: str = "lindenhof") -> dict[str, Any]:
    async with session_factory(engine)() as session:
        return await export_site(session, site_id)


async def test_demo_imports_and_a_second_import_changes_nothing(engine: AsyncEngine) -> None:
    await import_site_file(engine, DEMO)
    first = await snapshot(engine)
    assert len(first["account"]) == 6 and len(first["meter"]) == 6
    assert len(first["station"]) == 2 and len(first["amenity"]) == 2
    await import_site_file(engine, DEMO)
    assert await snapshot(engine) == first


# PostgreSQL only: SQLite plans from its indexes and is left alone.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_import_leaves_postgresql_statistics_of_what_it_wrote(
    engine: AsyncEngine,
) -> None:
    """Without them (autovacuum off, or not yet round) the planner takes the fresh badge table
    for nearly empty and a batch's badge lookup reads every badge of the site."""
    await import_site_file(engine, DEMO)
    async with engine.connect() as connection:
        badges = (await connection.execute(text("SELECT count(*) FROM badge"))).scalar_one()
        # reltuples is -1 until a table was first analysed or vacuumed.
        estimated = (await connection.execute(text(
            "SELECT reltuples FROM pg_class WHERE relname = 'badge'"))).scalar_one()
    assert badges > 0
    assert estimated == badges


async def test_export_import_export_is_lossless(engine: AsyncEngine) -> None:
    await import_site_file(engine, DEMO)
    before = await snapshot(engine)
    document = await exported(engine)
    assert "password" not in json.dumps(document["stations"]).replace("password_hash", "")
    assert document["stations"][0]["password_hash"].startswith("scrypt")
    assert document["accounts"][0]["opening_balance"] == "50.00"
    await import_site(engine, json.loads(json.dumps(document)))
    assert await snapshot(engine) == before
    assert await exported(engine) == document
    jsonschema.validate(document, site_file_schema())


BAD_DOCUMENTS = [
    (
        "unknown tariff",
        lambda d: d["stations"][1].update(tariff="wb"),
        "stations[1].tariff: unknown tariff 'wb'",
    ),
    (
        "duplicate id",
        lambda d: d["accounts"].append(dict(d["accounts"][0])),
        "accounts[6].id: duplicate id 'a-01'",
    ),
    (
        "wrong type",
        lambda d: d["stations"][0].update(connectors="two"),
        "stations[0].connectors: Input should be a valid integer",
    ),
    (
        "out of range",
        lambda d: d["stations"][0].update(security_profile=7),
        "stations[0].security_profile: Input should be less than or equal to 3",
    ),
    ("unknown key", lambda d: d["site"].update(colour="green"), "site.colour: unknown key"),
    (
        "unknown account",
        lambda d: d["badges"][2].update(account="zz"),
        "badges[2].account: unknown account 'zz'",
    ),
    ("bad uid", lambda d: d["badges"][0].update(uid="04:a2:b3:c4"), "badges[0].uid:"),
    (
        "bad tariff",
        lambda d: d["tariffs"][0]["components"][0]["tiers"][0].pop("price"),
        "tariffs[0].components[0].tiers[0].price",
    ),
    (
        "unknown relay driver",
        lambda d: d["amenities"][0].update(relay={"driver": "no-such-driver", "colour": "red"}),
        "amenities[0].relay.driver: unknown driver 'no-such-driver'",
    ),
    (
        "unknown relay key",
        lambda d: d["amenities"][1]["relay"].update(colour="red"),
        "amenities[1].relay.colour: unknown key",
    ),
    (
        "relay without driver",
        lambda d: d["amenities"][1]["relay"].pop("driver"),
        "amenities[1].relay.driver: Field required",
    ),
    (
        "key of another driver",
        lambda d: d["amenities"][0]["relay"].update(coil=3),
        "amenities[0].relay.coil: unknown key",
    ),
    (
        "unknown disconnect key",
        lambda d: d["meters"][2].update(
            disconnect={"driver": "modbus-coil", "host": "192.0.2.31", "channel": 0}
        ),
        "meters[2].disconnect.channel: unknown key",
    ),
    (
        "bad disconnect value",
        lambda d: d["meters"][2].update(
            disconnect={"driver": "modbus-coil", "host": "192.0.2.31", "transport": "udp"}
        ),
        "meters[2].disconnect.transport:",
    ),
    (
        "unknown modbus key",
        lambda d: d["meters"][1]["modbus"].update(baud=9600),
        "meters[1].modbus.baud: unknown key",
    ),
    (
        "unknown meter profile",
        lambda d: d["meters"][0].update(profile="no-such-profile"),
        "meters[0].profile: unknown profile 'no-such-profile'",
    ),
    (
        "unknown cycle key",
        lambda d: d["amenities"][0].update(cycle={"start_w": 10, "stop_w": 3}),
        "amenities[0].cycle.stop_w: unknown key",
    ),
    (
        "bad cycle value",
        lambda d: d["amenities"][0].update(cycle={"end_after_s": -1}),
        "amenities[0].cycle.end_after_s: Input should be greater than or equal to 1",
    ),
    (
        "cycle ends above its start",
        lambda d: d["amenities"][0].update(cycle={"start_w": 10, "end_w": 50}),
        "amenities[0].cycle.end_w: above start_w",
    ),
    (
        "unknown power key",
        lambda d: d["amenities"][1].update(power={
            "profile": "eastron-sdm120", "modbus": {"host": "192.0.2.40"}, "driver": "x",
        }),
        "amenities[1].power.driver: unknown key",
    ),
    (
        "unknown power profile",
        lambda d: d["amenities"][1].update(power={
            "profile": "no-such-profile", "modbus": {"host": "192.0.2.40"},
        }),
        "amenities[1].power.profile: unknown profile 'no-such-profile'",
    ),
    (
        "unknown register key",
        lambda d: d.update(meter_profiles=[{"id": "mine", "registers": {
            "energy_import_wh": {"address": 0, "function": "input", "type": "float32",
                                 "endian": "big"},
            "power_w": {"address": 12, "function": "input", "type": "float32"},
        }}]),
        "meter_profiles[0].registers.energy_import_wh.endian: unknown key",
    ),
    (
        "profile without power",
        lambda d: d.update(meter_profiles=[{"id": "mine", "registers": {
            "energy_import_wh": {"address": 0, "function": "input", "type": "float32"},
        }}]),
        "meter_profiles[0].registers: power_w is missing",
    ),
    (
        "unknown meter key",
        lambda d: d["meters"][0].update(poll_every=60),
        "meters[0].poll_every: unknown key",
    ),
    (
        "missing password",
        lambda d: d["stations"][0].pop("password"),
        "stations[0].password: required for security profile 1",
    ),
]


@pytest.mark.parametrize(
    ("case", "mutate", "expected"), BAD_DOCUMENTS, ids=[c[0] for c in BAD_DOCUMENTS]
)
async def test_bad_documents_name_the_path_and_change_nothing(
    engine: AsyncEngine, case: str, mutate: Any, expected: str
) -> None:
    await import_site_file(engine, DEMO)
    before = await snapshot(engine)
    document = demo()
    document["accounts"][0]["name"] = "changed, must not land"
    mutate(document)
    with pytest.raises(SiteFileError) as error:
        await import_site(engine, document)
    assert any(problem.startswith(expected) for problem in error.value.problems), (
        error.value.problems
    )
    assert await snapshot(engine) == before


async def test_every_driver_and_profile_of_the_device_contract_is_accepted(
    engine: AsyncEngine,
) -> None:
    document = demo()
    document["amenities"][0]["relay"] = {
        "driver": "shelly-gen2", "host": "192.0.2.10", "port": 80, "channel": 0,
        "password": "pw", "inverted": True,
    }
    document["amenities"][1]["relay"] = {
        "driver": "shelly-gen1", "host": "192.0.2.11", "channel": 1, "username": "u",
        "password": "p",
    }
    profiles = ("eastron-sdm630", "eastron-sdm72d-m", "eastron-sdm120", "abb-b23",
                "carlo-gavazzi-em24", "inepro-pro380")
    for meter, profile in zip(document["meters"], profiles, strict=True):
        meter["profile"] = profile
    document["meters"][0]["modbus"]["transport"] = "rtu-over-tcp"
    document["meters"][0]["disconnect"] = {
        "driver": "modbus-coil", "host": "192.0.2.31", "port": 502, "unit": 2, "coil": 4,
        "transport": "rtu-over-tcp", "inverted": False,
    }
    document["amenities"][0]["power"] = {
        "profile": "my-meter", "modbus": {"host": "192.0.2.40", "unit": 7},
    }
    document["amenities"][0]["cycle"] = {"start_w": 15, "end_w": 4, "end_after_s": 900}
    document["amenities"][1]["cycle"] = {}
    document["meters"][1]["profile"] = "my-meter"
    document["meters"][1]["poll_s"] = 30
    document["meter_profiles"] = [{"id": "my-meter", "registers": {
        "energy_import_wh": {"address": 0x0156, "function": "input", "type": "float32",
                             "word_order": "big", "scale": 1000},
        "power_w": {"address": 0x0034, "function": "holding", "type": "int32",
                    "word_order": "little"},
    }}]
    profiles = (profiles[0], "my-meter", *profiles[2:])
    await import_site(engine, document)
    before = await snapshot(engine)
    back = await exported(engine)
    assert back["meter_profiles"] == document["meter_profiles"]
    amenities = {a["id"]: a for a in back["amenities"]}
    assert amenities["washer-1"]["power"] == document["amenities"][0]["power"]
    assert amenities["washer-1"]["cycle"] == document["amenities"][0]["cycle"]
    assert amenities["dryer-1"]["cycle"] == {}
    await import_site(engine, json.loads(json.dumps(back)))
    assert await snapshot(engine) == before and await exported(engine) == back
    relays = {a["id"]: a["relay"] for a in back["amenities"]}
    assert relays == {a["id"]: a["relay"] for a in document["amenities"]}
    meters = {m["id"]: m for m in back["meters"]}
    assert meters["m-a-01"]["disconnect"] == document["meters"][0]["disconnect"]
    assert meters["m-a-01"]["modbus"]["transport"] == "rtu-over-tcp"
    assert {m["id"]: m["profile"] for m in document["meters"]} == {
        id_: m["profile"] for id_, m in meters.items()
    }
    jsonschema.validate(back, site_file_schema())


def test_the_schema_describes_the_nested_blocks() -> None:
    schema = site_file_schema()
    document = json.loads(json.dumps(demo(), default=str))
    jsonschema.validate(document, schema)
    for mutate in (
        lambda d: d["amenities"][0].update(relay={"driver": "no-such-driver"}),
        lambda d: d["amenities"][0]["relay"].update(colour="red"),
        lambda d: d["meters"][0]["modbus"].update(baud=9600),
        lambda d: d["amenities"][0].update(cycle={"stop_w": 3}),
        lambda d: d.update(meter_profiles=[{"id": "x", "registers": {}, "maker": "y"}]),
    ):
        bad = copy.deepcopy(document)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


async def test_every_problem_is_reported_at_once(engine: AsyncEngine) -> None:
    before = await snapshot(engine)
    document = demo()
    document["stations"][1]["tariff"] = "wb"
    document["meters"][0]["account"] = "nobody"
    document["amenities"][0]["kind"] = "sauna"
    with pytest.raises(SiteFileError) as error:
        await import_site(engine, document)
    problems = "\n".join(error.value.problems)
    assert "stations[1].tariff: unknown tariff 'wb'" in problems
    assert "meters[0].account: unknown account 'nobody'" in problems
    assert "amenities[0].kind:" in problems
    assert await snapshot(engine) == before


def volthaus_process(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it: its own process (seconds here, for the imports)."""
    env = dict(os.environ, VOLTHAUS_DATABASE_URL=database)
    return subprocess.run(
        [str(Path(sys.executable).with_name("volthaus")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


Volthaus = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def volthaus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Volthaus:
    """The command through `csms.cli.main.main` in this process (a subprocess would import the
    whole stack for every call: seconds each), answered as a process would."""

    def run(*args: str, database: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("VOLTHAUS_DATABASE_URL", database)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["volthaus", *args], code, out, err)

    return run


def bad_site_file(tmp_path: Path) -> Path:
    bad = demo()
    bad["stations"][1]["tariff"] = "wb"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(json.loads(json.dumps(bad, default=str))))
    return bad_file


def test_a_real_process_refuses_a_bad_file_with_exit_2(
    volthaus: Volthaus, tmp_path: Path
) -> None:
    """`volthaus site import` as a person runs it: exit 2, the field on stderr, nothing on
    stdout."""
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    assert volthaus("db", "upgrade", database=database).returncode == 0
    result = volthaus_process("site", "import", str(bad_site_file(tmp_path)), database=database)
    assert result.returncode == 2
    assert "stations[1].tariff: unknown tariff 'wb'" in result.stderr
    assert result.stdout == ""


def test_cli_import_export_schema_and_errors(volthaus: Volthaus, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    assert volthaus("site", "import", str(DEMO), database=database).returncode == 0
    out = volthaus("site", "export", "lindenhof", database=database)
    assert out.returncode == 0
    document = json.loads(out.stdout)
    assert [s["id"] for s in document["stations"]] == ["WB-A-01", "WB-B-01"]
    as_yaml = volthaus("site", "export", "lindenhof", "--format", "yaml", database=database)
    assert yaml.safe_load(as_yaml.stdout) == document
    schema = json.loads(volthaus("site", "schema", database=database).stdout)
    assert schema["title"] == "Volthaus site file" and "stations" in schema["properties"]

    result = volthaus("site", "import", str(bad_site_file(tmp_path)), database=database)
    assert result.returncode == 2
    assert "stations[1].tariff: unknown tariff 'wb'" in result.stderr
    assert result.stdout == ""

    broken = tmp_path / "broken.yaml"
    broken.write_text("site: {id: x\nbuildings: [")
    result = volthaus("site", "import", str(broken), database=database)
    assert result.returncode == 2 and "invalid YAML at line" in result.stderr


async def test_http_import_answers_422_with_the_same_problems(api: Api) -> None:
    admin = await api.admin()
    body = DEMO.read_text()
    imported = await api.client.post(
        "/api/v1/sites/import", content=body, headers=admin | {"Content-Type": "application/yaml"}
    )
    assert imported.status_code == 200, imported.text
    bad = json.loads(json.dumps(demo(), default=str))
    bad["stations"][1]["tariff"] = "wb"
    refused = await api.client.post("/api/v1/sites/import", json=bad, headers=admin)
    assert refused.status_code == 422
    assert "stations[1].tariff: unknown tariff 'wb'" in problem_lines(refused)

    installer_elsewhere = await api.token("installer", site="lindenhof")
    other = json.loads(json.dumps(demo(), default=str))
    other["site"]["id"] = "elsewhere"
    for section in ("accounts", "stations", "amenities", "meters", "badges"):
        other[section] = []
    forbidden = await api.client.post(
        "/api/v1/sites/import", json=other, headers=installer_elsewhere
    )
    assert forbidden.status_code == 403
    owner = await api.token("owner", site="lindenhof")
    assert (
        await api.client.post("/api/v1/sites/import", json=other, headers=owner)
    ).status_code == 403
    assert (await api.client.post("/api/v1/sites/import", json=other)).status_code == 401
    export = await api.client.get("/api/v1/sites/lindenhof/export", headers=owner)
    assert export.status_code == 200 and len(export.json()["accounts"]) == 6


async def test_badge_changes_reach_the_local_lists_and_keep_enrolment_data(
    engine: AsyncEngine,
) -> None:
    from rfid.models import Badge
    from rfid.registry import list_version

    await import_site_file(engine, DEMO)
    async with session_factory(engine)() as session:
        version = await list_version(session, "lindenhof")
        badge = await session.get(Badge, ("lindenhof", "04A2B3C4"))
        assert badge is not None
        badge.card_type = "MIFARE Classic 1K"
        await session.commit()
    assert version >= 1
    await import_site_file(engine, DEMO)  # unchanged: no new version
    async with session_factory(engine)() as session:
        assert await list_version(session, "lindenhof") == version
    document = demo()
    document["badges"][0]["status"] = "blocked"
    await import_site(engine, document)
    async with session_factory(engine)() as session:
        assert await list_version(session, "lindenhof") == version + 1
        badge = await session.get(Badge, ("lindenhof", "04A2B3C4"))
        assert badge is not None
        assert badge.status == "blocked" and badge.card_type == "MIFARE Classic 1K"
