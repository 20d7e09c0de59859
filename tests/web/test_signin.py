"""Signing in over real HTTP: one-time set-password links, secure cookies, CSRF on every form,
the throttle, sign-out ending the session, and the area each role may open."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from csms.db.engine import session_factory
from csms.web.models import LoginFailure, WebSession
from csms.web.users import create_user
from tests.web.conftest import Portal, csrf_of, sign_in_client


async def test_a_set_password_link_works_once_and_then_the_user_signs_in(portal: Portal) -> None:
    async with session_factory(portal.node.engine)() as db:
        _, token = await create_user(db, email="Neu@Example.org", role="owner",
                                     site_id="lindenhof", now=datetime.now(UTC))
        await db.commit()
    async with portal.client() as client:
        form = await client.get(f"/set-password/{token}")
        assert form.status_code == 200 and "neu@example.org" in form.text
        csrf = csrf_of(form.text)
        short = await client.post(f"/set-password/{token}", data={
            "csrf": csrf, "password": "kurz", "repeat": "kurz"})
        assert short.status_code == 422
        done = await client.post(f"/set-password/{token}", data={
            "csrf": csrf, "password": "ein-langes-passwort", "repeat": "ein-langes-passwort"})
        assert done.status_code == 200
        again = await client.get(f"/set-password/{token}")
        assert again.status_code == 404  # the link is spent
        signed = await sign_in_client(portal, client, "neu@example.org", "ein-langes-passwort")
        assert signed.status_code == 303 and signed.headers["location"] == "/owner"


async def test_the_session_cookie_is_httponly_and_samesite_and_sign_out_ends_it(
    portal: Portal,
) -> None:
    email, password = await portal.user("resident")
    async with portal.client() as client:
        answer = await sign_in_client(portal, client, email, password)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "vh_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # plain HTTP here; behind TLS the flag is set (below)
        stolen = client.cookies.get("vh_session")
        home = await client.get("/")
        assert home.headers["location"] == "/resident"
        page = await client.get("/signin")
        out = await client.post("/signout", data={"csrf": await _session_csrf(portal)})
        assert out.status_code == 303
        assert page.status_code == 200
    # The old cookie no longer opens anything, even when replayed.
    async with portal.client() as other:
        other.cookies.set("vh_session", stolen or "")
        assert (await other.get("/")).headers["location"] == "/signin"


async def _session_csrf(portal: Portal) -> str:
    async with session_factory(portal.node.engine)() as db:
        rows = (await db.exec(select(WebSession))).all()
        return rows[-1].csrf


async def test_cookies_are_secure_behind_tls(portal: Portal) -> None:
    email, password = await portal.user("owner")
    async with portal.client() as client:
        page = await client.get("/signin", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in page.headers["set-cookie"].lower()
        # The client keeps a Secure cookie for https only, as browsers do: hand it over here.
        csrf_cookie = page.headers["set-cookie"].split(";")[0]
        answer = await client.post("/signin", headers={
            "X-Forwarded-Proto": "https", "Cookie": csrf_cookie}, data={
            "csrf": csrf_of(page.text), "email": email, "password": password})
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()


async def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    portal: Portal,
) -> None:
    email, password = await portal.user("owner")
    async with portal.client() as client:
        await client.get("/signin")
        refused = await client.post("/signin", data={"email": email, "password": password})
        assert refused.status_code == 403
        forged = await client.post("/signin", data={"csrf": "forged", "email": email,
                                                    "password": password})
        assert forged.status_code == 403
        assert "vh_session" not in client.cookies
    async with session_factory(portal.node.engine)() as db:
        assert (await db.exec(select(WebSession))).all() == []


async def test_wrong_passwords_are_throttled_by_email(portal: Portal) -> None:
    email, password = await portal.user("installer")
    async with portal.client() as client:
        for _ in range(5):
            wrong = await sign_in_client(portal, client, email, "falsch-falsch")
            assert wrong.status_code == 401
        # Now even the right password waits: a guesser cannot tell it was right.
        held = await sign_in_client(portal, client, email, password)
        assert held.status_code == 429
        assert "Sekunden" in held.text
    async with session_factory(portal.node.engine)() as db:
        assert len((await db.exec(select(LoginFailure))).all()) == 5


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x"])
async def test_sign_in_never_redirects_off_site(portal: Portal, target: str) -> None:
    email, password = await portal.user("owner")
    async with portal.client() as client:
        page = await client.get("/signin")
        answer = await client.post("/signin", data={
            "csrf": csrf_of(page.text), "email": email, "password": password, "next": target})
        assert answer.headers["location"] == "/owner"


async def test_an_unknown_or_disabled_user_gets_the_same_answer_as_a_wrong_password(
    portal: Portal,
) -> None:
    async with portal.client() as client:
        unknown = await sign_in_client(portal, client, "niemand@example.org", "irgendwas-123")
        assert unknown.status_code == 401
        assert "E-Mail oder Passwort ist falsch" in unknown.text


async def test_pages_of_another_role_are_forbidden_and_without_a_session_lead_to_sign_in(
    portal: Portal,
) -> None:
    from csms.web.mount import listed_pages

    email, password = await portal.user("resident")
    staff_pages = [path for role, path in listed_pages() if role in ("owner", "installer")]
    async with portal.client() as client:
        for path in staff_pages[:5]:
            answer = await client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/signin")
        await sign_in_client(portal, client, email, password)
        for path in staff_pages[:5]:
            assert (await client.get(path)).status_code == 403


async def test_a_new_role_or_household_ends_the_sessions_a_language_does_not(
    portal: Portal,
) -> None:
    from csms.web.models import WebUser
    from csms.web.users import update_user

    email, password = await portal.user("resident", account="a-01")
    async with portal.client() as client:
        await sign_in_client(portal, client, email, password)
        assert (await client.get("/resident")).status_code == 200
        async with session_factory(portal.node.engine)() as db:
            user = (await db.exec(select(WebUser).where(WebUser.email == email))).one()
            await update_user(db, user, now=datetime.now(UTC), language="en")
            await db.commit()
        assert (await client.get("/resident")).status_code == 200
        async with session_factory(portal.node.engine)() as db:
            user = (await db.exec(select(WebUser).where(WebUser.email == email))).one()
            await update_user(db, user, now=datetime.now(UTC), account_ref="a-02")
            await db.commit()
        assert (await client.get("/resident")).headers["location"].startswith("/signin")
