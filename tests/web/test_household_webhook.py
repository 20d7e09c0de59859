"""A household's own alert webhook: the resident sets it on the alerts page, sees the signing
key, and the running node POSTs the household's alerts there, signed with that key; an address
into the operator's own network is refused unless the installation allows it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from csms.db.engine import session_factory
from csms.serve import running_node
from tests.conftest import node_settings
from tests.wallet.test_notify import Receiver, message, webhook_server
from tests.web.conftest import DEMO_SITE, Portal, csrf_of, sign_in_client
from wallet.alert_outbox import raise_alert
from wallet.models import Account, AlertOutbox
from wallet.notify import (
    DeliveryFailed,
    HouseholdWebhookNotifier,
    household_webhook_problem,
    verify,
)

__all__ = ["webhook_server"]  # the receiver fixture, shared with the wallet's notify tests


@pytest.fixture
async def lan_portal(tmp_path: Path) -> AsyncIterator[Portal]:
    settings = node_settings(f"sqlite:///{tmp_path / 'portal.db'}",
                             household_webhook_private_ok=True, alert_interval_s=0.2)
    async with running_node(settings, site_file=DEMO_SITE) as node:
        yield Portal(node)


async def _save_alerts(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/resident/alerts")
    return await client.post("/resident/alerts", data={
        "csrf": csrf_of(page.text), "email": "", "language": "en", **fields})


@pytest.mark.parametrize("webhook_server", [0], indirect=True)
async def test_the_household_hears_its_alerts_on_its_own_webhook(
    lan_portal: Portal, webhook_server: tuple[str, Receiver],
) -> None:
    url, receiver = webhook_server
    email, password = await lan_portal.user("resident", account="a-01")
    async with lan_portal.client() as client:
        await sign_in_client(lan_portal, client, email, password)
        refused = await _save_alerts(client, webhook_url="ftp://example.org/hook")
        assert refused.status_code == 422 and "keine Webhook-Adresse" in refused.text
        saved = await _save_alerts(client, webhook_url=url)
        assert saved.status_code == 303
        page = (await client.get("/resident/alerts")).text
        marker = 'data-testid="webhook-secret">'
        secret = page[page.index(marker) + len(marker):].split("<", 1)[0]
        assert len(secret) >= 40
        # Saving again keeps the key (a receiver keeps working); "new key" replaces it.
        await _save_alerts(client, webhook_url=url)
        assert secret in (await client.get("/resident/alerts")).text
    async with session_factory(lan_portal.node.engine)() as db:
        account = (await db.exec(
            select(Account).where(Account.ref == "a-01"))).one()
        assert account.webhook_secret == secret
        other = (await db.exec(
            select(Account).where(Account.ref == "a-02"))).one()
        mine = await raise_alert(db, account_id=account.id, kind="low_balance",
                                 payload={"currency": "EUR", "balance": "3.1",
                                          "threshold": "5.00"}, at=datetime.now(UTC))
        theirs = await raise_alert(db, account_id=other.id, kind="low_balance",
                                   payload={"currency": "EUR", "balance": "2.0",
                                            "threshold": "5.00"}, at=datetime.now(UTC))
        await db.commit()
    for _ in range(100):
        if receiver.requests:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a second POST, if one were coming, would be here by now
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert verify(secret, headers["X-Volthaus-Timestamp"], body,
                  headers["X-Volthaus-Signature"])
    sent = json.loads(body)
    assert sent["id"] == mine.id and sent["account_id"] == "a-01"
    assert sent["language"] == "en" and sent["subject"] == "Balance below €5.00"
    async with session_factory(lan_portal.node.engine)() as db:
        delivered = await db.get(AlertOutbox, mine.id)
        queued = await db.get(AlertOutbox, theirs.id)
        assert delivered is not None and delivered.sent_at is not None
        # No site-wide channel here: the neighbour's alert waits for one, not sent to nobody.
        assert queued is not None and queued.sent_at is None and queued.attempts == 0


@pytest.mark.parametrize("webhook_server", [0], indirect=True)
async def test_a_private_address_is_refused_unless_allowed(
    webhook_server: tuple[str, Receiver],
) -> None:
    url, receiver = webhook_server
    alert = message("en")
    alert = type(alert)(**{**{f: getattr(alert, f) for f in alert.__slots__},
                           "webhook_url": url, "webhook_secret": "k" * 32})
    with pytest.raises(DeliveryFailed, match="private address"):
        await HouseholdWebhookNotifier().send(alert)
    assert receiver.requests == []
    await HouseholdWebhookNotifier(allow_private=True).send(alert)
    assert len(receiver.requests) == 1


def test_webhook_addresses_are_checked() -> None:
    assert household_webhook_problem("https://hooks.example.org/volthaus") is None
    assert household_webhook_problem("ftp://example.org/") is not None
    assert household_webhook_problem("https://user:pw@example.org/") is not None
    assert household_webhook_problem("https:///nohost") is not None
    assert household_webhook_problem("https://example.org/" + "x" * 600) is not None
