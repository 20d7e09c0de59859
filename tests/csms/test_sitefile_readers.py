"""The site file's `readers[]` (devices.md): imported, exported back losslessly, described by
the schema; an amenity names a reader of the file; bad entries name their path and change
nothing (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from amenities.models import Reader
from csms.db.engine import session_factory
from csms.inventory.sitefile import (
    SiteFileError,
    import_site,
    import_site_file,
    site_file_schema,
)
from tests.csms.test_sitefile import DEMO, demo, exported, snapshot


async def test_readers_are_imported_and_exported_back(engine: AsyncEngine) -> None:
    document = demo()
    document["buildings"].append({"id": "C"})
    document["readers"] = [
        {"id": "reader-1", "building": "A", "idtag_format": "hex"},
        {"id": "reader-2", "idtag_format": "dec-reversed"},
        {"id": "reader-3", "building": "C"},
    ]
    document["amenities"][1]["reader"] = "reader-2"
    await import_site(engine, document)
    async with session_factory(engine)() as session:
        stored = await session.get(Reader, "reader-2")
        assert stored is not None
        assert (stored.site_id, stored.building_id, stored.idtag_format) == (
            "lindenhof", None, "dec-reversed")
    back = await exported(engine)
    assert back["readers"] == [
        {"id": "reader-1", "building": "A", "idtag_format": "hex"},
        {"id": "reader-2", "idtag_format": "dec-reversed"},
        {"id": "reader-3", "building": "C", "idtag_format": "hex"},
    ]
    assert {a["id"]: a["reader"] for a in back["amenities"]} == {
        "washer-1": "reader-1", "dryer-1": "reader-2"}
    jsonschema.validate(back, site_file_schema())
    before = await snapshot(engine)
    await import_site(engine, json.loads(json.dumps(back)))
    assert await snapshot(engine) == before and await exported(engine) == back


async def test_a_changed_reader_is_updated_in_place(engine: AsyncEngine) -> None:
    await import_site_file(engine, DEMO)
    document = demo()
    document["readers"][0]["idtag_format"] = "wiegand34"
    document["readers"][0].pop("building")
    await import_site(engine, document)
    assert (await exported(engine))["readers"] == [
        {"id": "reader-1", "idtag_format": "wiegand34"}]


BAD_READERS = [
    (
        "amenity names an unknown reader",
        lambda d: d["amenities"][1].update(reader="reader-9"),
        "amenities[1].reader: unknown reader 'reader-9'",
    ),
    (
        "amenity names a reader while the file has none",
        lambda d: d.pop("readers"),
        "amenities[0].reader: unknown reader 'reader-1'",
    ),
    ("unknown key", lambda d: d["readers"][0].update(colour="red"),
     "readers[0].colour: unknown key"),
    (
        "unknown idtag format",
        lambda d: d["readers"][0].update(idtag_format="octal"),
        "readers[0].idtag_format: Input should be 'hex', 'hex-reversed'",
    ),
    ("no id", lambda d: d["readers"][0].pop("id"), "readers[0].id: Field required"),
    (
        "id not usable in a path",
        lambda d: d["readers"][0].update(id="reader/1"),
        "readers[0].id: String should match pattern",
    ),
    (
        "duplicate id",
        lambda d: d["readers"].append({"id": "reader-1"}),
        "readers[1].id: duplicate id 'reader-1'",
    ),
    (
        "unknown building",
        lambda d: d["readers"][0].update(building="Z"),
        "readers[0].building: unknown building 'Z'",
    ),
    ("not a list", lambda d: d.update(readers={"id": "reader-1"}), "readers: Input should be"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), BAD_READERS,
                         ids=[c[0] for c in BAD_READERS])
async def test_bad_readers_name_the_path_and_change_nothing(
    engine: AsyncEngine, case: str, mutate: Any, expected: str
) -> None:
    await import_site_file(engine, DEMO)
    before = await snapshot(engine)
    document = demo()
    document["accounts"][0]["name"] = "changed, must not land"
    mutate(document)
    with pytest.raises(SiteFileError) as error:
        await import_site(engine, document)
    assert any(p.startswith(expected) for p in error.value.problems), error.value.problems
    assert await snapshot(engine) == before


async def test_a_reader_of_another_site_is_refused(engine: AsyncEngine) -> None:
    await import_site_file(engine, DEMO)
    other: dict[str, Any] = {
        "site": {"id": "seeblick", "name": "Seeblick", "timezone": "Europe/Berlin",
                 "currency": "EUR", "country": "DE"},
        "readers": [{"id": "reader-1"}],
    }
    with pytest.raises(SiteFileError) as error:
        await import_site(engine, other)
    assert error.value.problems == ("readers[0].id: 'reader-1' belongs to site 'lindenhof'",)


def test_the_schema_describes_readers() -> None:
    schema = site_file_schema()
    document = json.loads(json.dumps(demo(), default=str))
    jsonschema.validate(document, schema)
    assert "readers" in schema["properties"]
    for mutate in (
        lambda d: d["readers"][0].update(colour="red"),
        lambda d: d["readers"][0].update(idtag_format="octal"),
        lambda d: d["readers"][0].pop("id"),
    ):
        bad = json.loads(json.dumps(document))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
