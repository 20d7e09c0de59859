"""`POST /api/v1/readers/{reader_id}/taps` over a real socket (devices.md): the laundry service's
answer passes through as it is; unknown reader or amenity 404, another reader's or site's token
403, bad input 422 naming its field; reader tokens reach nothing else."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi.routing import APIRoute

from amenities.taps import AmenityNotAtReader, AmenityRequired, UnknownAmenity
from csms.api.app import ROUTER_MODULES
from tests.conftest import Api
from tests.csms.fakes import FakeLaundry, Tap, refused
from tests.csms.problems import problem, problem_lines
from tests.csms.test_api_problems import DEMO_SITE

SEEBLICK = """
site: {id: seeblick, name: Seeblick, timezone: Europe/Berlin, currency: EUR, country: DE}
readers: [{id: reader-s, idtag_format: dec-reversed}]
"""
# The demo site with a second reader, at the dryer.
LINDENHOF = DEMO_SITE.read_text().replace(
    "readers:\n", "readers:\n  - {id: reader-2, idtag_format: dec}\n"
)
TAPS = "/api/v1/readers/{}/taps"


@dataclass
class Laundromat:
    api: Api
    laundry: FakeLaundry
    admin: dict[str, str]
    reader_1: dict[str, str]

    async def tap(self, reader: str, body: object, headers: dict[str, str] | None = None,
                  ) -> tuple[int, dict[str, object]]:
        answer = await self.api.client.post(
            TAPS.format(reader), json=body, headers=self.reader_1 if headers is None else headers
        )
        if answer.status_code == 200:
            return 200, answer.json()
        return answer.status_code, problem(answer)


@pytest.fixture
async def site(api: Api) -> AsyncIterator[Laundromat]:
    admin = await api.admin()
    for document in (LINDENHOF, SEEBLICK):
        imported = await api.client.post("/api/v1/sites/import", content=document,
                                         headers=admin)
        assert imported.status_code == 200, imported.text
    laundry = FakeLaundry()
    api.node.app.state.laundry = laundry
    reader_1 = await api.token("reader", site="lindenhof", reader="reader-1")
    yield Laundromat(api, laundry, admin, reader_1)


async def test_an_accepted_tap_passes_through(site: Laundromat) -> None:
    status, body = await site.tap("reader-1", {"id_tag": "04A2B3C4", "amenity": "washer-1"})
    assert status == 200
    assert body == {
        "decision": "accepted", "amenity": "washer-1", "reason": "accepted",
        "message": {"de": "washer-1 ist freigegeben", "en": "washer-1 is ready to start"},
    }
    assert site.laundry.taps == [Tap("lindenhof", "reader-1", "04A2B3C4", "washer-1")]


async def test_a_refused_tap_passes_through_and_the_amenity_may_be_left_out(
    site: Laundromat,
) -> None:
    site.laundry.answers["0012345678"] = refused("dryer-1", "no-credit")
    status, body = await site.tap("reader-1", {"id_tag": "0012345678"})
    assert status == 200
    assert body == {
        "decision": "refused", "amenity": "dryer-1", "reason": "no-credit",
        "message": {"de": "Guthaben reicht nicht", "en": "not enough credit"},
    }
    assert site.laundry.taps == [Tap("lindenhof", "reader-1", "0012345678", None)]


async def test_unknown_reader_and_unknown_amenity_are_404(site: Laundromat) -> None:
    status, body = await site.tap("reader-9", {"id_tag": "04A2B3C4"}, site.admin)
    assert (status, body["detail"]) == (404, "unknown reader 'reader-9'")
    site.laundry.answers["04A2B3C4"] = UnknownAmenity("sauna-1")
    status, body = await site.tap("reader-1", {"id_tag": "04A2B3C4", "amenity": "sauna-1"})
    assert (status, body["detail"]) == (404, "unknown amenity 'sauna-1'")


async def test_another_readers_or_sites_token_is_403(site: Laundromat) -> None:
    status, body = await site.tap("reader-2", {"id_tag": "04A2B3C4"})
    assert status == 403
    assert body["detail"] == "this token is bound to reader 'reader-1', not 'reader-2'"
    other_site = await site.api.token("reader", site="seeblick", reader="reader-s")
    status, body = await site.tap("reader-1", {"id_tag": "04A2B3C4"}, other_site)
    assert status == 403 and "bound to site 'seeblick'" in str(body["detail"])
    owner_elsewhere = await site.api.token("owner", site="seeblick")
    status, _ = await site.tap("reader-1", {"id_tag": "04A2B3C4"}, owner_elsewhere)
    assert status == 403
    resident = await site.api.token("resident", site="lindenhof", account="a-01")
    status, body = await site.tap("reader-1", {"id_tag": "04A2B3C4"}, resident)
    assert status == 403 and "role 'resident'" in str(body["detail"])
    status, _ = await site.tap("reader-1", {"id_tag": "04A2B3C4"}, {})
    assert status == 401
    assert site.laundry.taps == []


async def test_staff_of_the_site_may_tap_for_testing(site: Laundromat) -> None:
    for role in ("owner", "installer"):
        headers = await site.api.token(role, site="lindenhof")
        status, body = await site.tap("reader-2", {"id_tag": "1234", "amenity": "dryer-1"},
                                      headers)
        assert (status, body["decision"]) == (200, "accepted")
    status, _ = await site.tap("reader-s", {"id_tag": "1234"}, site.admin)
    assert status == 200
    assert [(t.site_id, t.reader_id) for t in site.laundry.taps] == [
        ("lindenhof", "reader-2"), ("lindenhof", "reader-2"), ("seeblick", "reader-s")]


@pytest.mark.parametrize(("body", "expected"), [
    ({"id_tag": ""}, "body.id_tag: String should have at least 1 character"),
    ({"id_tag": "1" * 65}, "body.id_tag: String should have at most 64 characters"),
    ({"amenity": "washer-1"}, "body.id_tag: Field required"),
    ({"id_tag": 4711}, "body.id_tag: Input should be a valid string"),
    ({"id_tag": "04A2B3C4", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
])
async def test_bad_input_is_422_naming_the_field(
    site: Laundromat, body: dict[str, object], expected: str
) -> None:
    answer = await site.api.client.post(TAPS.format("reader-1"), json=body,
                                        headers=site.reader_1)
    assert answer.status_code == 422
    assert problem_lines(answer) == [expected]
    assert site.laundry.taps == []


async def test_sixty_four_characters_are_enough(site: Laundromat) -> None:
    status, _ = await site.tap("reader-1", {"id_tag": "1" * 64, "amenity": "washer-1"})
    assert status == 200 and site.laundry.taps[0].id_tag == "1" * 64


async def test_the_machine_must_be_one_of_the_reader(site: Laundromat) -> None:
    site.laundry.answers["04A2B3C4"] = AmenityRequired("reader-1", ["washer-1", "dryer-1"])
    answer = await site.api.client.post(TAPS.format("reader-1"), json={"id_tag": "04A2B3C4"},
                                        headers=site.reader_1)
    assert answer.status_code == 422
    assert problem_lines(answer) == [
        "amenity: reader 'reader-1' serves washer-1, dryer-1; name the machine"]
    site.laundry.answers["04A2B3C4"] = AmenityNotAtReader("washer-2", "reader-1")
    answer = await site.api.client.post(
        TAPS.format("reader-1"), json={"id_tag": "04A2B3C4", "amenity": "washer-2"},
        headers=site.reader_1)
    assert answer.status_code == 422
    assert problem_lines(answer) == [
        "amenity: amenity 'washer-2' is not served by reader 'reader-1'"]


async def test_a_node_without_laundry_service_answers_503(site: Laundromat) -> None:
    del site.api.node.app.state.laundry
    status, body = await site.tap("reader-1", {"id_tag": "04A2B3C4"})
    assert (status, body["detail"]) == (503, "this node runs no laundry service")


async def test_the_openapi_declares_the_taps_route(site: Laundromat) -> None:
    schema = (await site.api.client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/v1/readers/{reader_id}/taps"]["post"]
    assert {"200", "401", "403", "404", "422", "503"} <= set(operation["responses"])


async def test_a_reader_token_reaches_nothing_else(site: Laundromat) -> None:
    # Every route declares its roles; only the taps route admits readers. (Read from the
    # routers themselves: FastAPI 0.165 keeps included routers unflattened in `app.routes`.)
    admitting, undeclared, seen = [], [], 0
    for name in ROUTER_MODULES:
        for route in importlib.import_module(name).router.routes:
            if not isinstance(route, APIRoute) or name.endswith(".health"):
                continue
            seen += 1
            roles = [getattr(d.call, "admitted_roles", None) for d in route.dependant.dependencies]
            if not any(roles):
                undeclared.append(route.path)
            if any(r and "reader" in r for r in roles):
                admitting.append(route.path)
    assert seen >= 30 and undeclared == []
    assert admitting == ["/readers/{reader_id}/taps"]
    for method, path in (
        ("GET", "/api/v1/sites/lindenhof/export"),
        ("GET", "/api/v1/sites/lindenhof/badges"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/accounts/a-01/wallet"),
        ("POST", "/api/v1/sites/import"),
    ):
        answer = await site.api.client.request(method, path, headers=site.reader_1)
        assert answer.status_code == 403, (path, answer.text)
        assert problem(answer)["detail"].startswith("role 'reader' may not do this")
