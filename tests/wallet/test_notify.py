"""Alert delivery over real sockets: SMTP to an aiosmtpd server on loopback, signed webhooks to a
real HTTP server that fails before it succeeds; texts in German and English."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.conftest import Inbox
from wallet.errors import InvalidInput, InvalidInputs, NotFound
from wallet.models import AlertOutbox
from wallet.notify import (
    AlertMessage,
    DeliveryFailed,
    SmtpNotifier,
    WebhookNotifier,
    deliver_pending,
    verify,
)
from wallet.service import debit, raise_alert, set_policy, top_up_cash
from wallet.texts import TEXTS, format_money, render

Factory = async_sessionmaker[AsyncSession]
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
SECRET = "whsec-test"


class Receiver:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []


@pytest.fixture
def webhook_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver(getattr(request, "param", 2))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append((dict(self.headers.items()), body))
            failing = len(receiver.requests) <= receiver.failures
            self.send_response(503 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/volthaus", receiver
    server.shutdown()
    server.server_close()


async def no_sleep(_: float) -> None:
    return None


def message(language: str = "de", email: str | None = "keller@example.org") -> AlertMessage:
    subject, body = render("low_balance", language,
                           {"currency": "EUR", "balance": "4.5", "threshold": "5.00"})
    return AlertMessage(7, "a-01", "low_balance", language, subject, body,
                        {"balance": "4.5000"}, AT, email)


def test_texts_in_german_and_english() -> None:
    assert format_money(Decimal("1234.5"), "EUR", "de") == "1\u202f234,50 €"
    assert format_money(Decimal("-4.5"), "EUR", "en") == "-€4.50"
    subject, body = render("low_balance", "de",
                           {"currency": "EUR", "balance": "4.5", "threshold": "5.00"})
    assert subject == "Guthaben unter 5,00 €" and "beträgt jetzt 4,50 €" in body
    subject, body = render("supply_cut", "en", {"currency": "EUR", "balance": "-0.20"})
    assert subject == "Electricity supply cut" and "(balance: -€0.20)" in body


def test_every_alert_kind_has_both_texts() -> None:
    assert set(TEXTS["de"]) == set(TEXTS["en"])
    assert {"charging_stopped", "badge_clone_suspected"} <= set(TEXTS["de"])
    subject, body = render("charging_stopped", "de", {
        "currency": "EUR", "cost": "7.4", "device_id": "WB-1", "use_id": 1})
    assert subject == "Ladevorgang gestoppt" and "an WB-1" in body and "7,40 €" in body


async def test_smtp_delivers_to_a_real_server(smtp_server: tuple[int, Inbox]) -> None:
    port, inbox = smtp_server
    notifier = SmtpNotifier("127.0.0.1", port, "Volthaus <wallet@volthaus.example>")
    await notifier.send(message("en", "smith@example.org"))
    await notifier.send(message("en", None))  # no address: nothing to send
    assert len(inbox.mails) == 1
    mail = inbox.mails[0]
    assert mail["To"] == "smith@example.org"
    assert mail["Subject"] == "Balance below €5.00"
    assert "now €4.50" in mail.get_content()


async def test_smtp_failure_is_a_delivery_failure() -> None:
    notifier = SmtpNotifier("127.0.0.1", 1, "wallet@volthaus.example", timeout=2)
    with pytest.raises(DeliveryFailed, match=r"smtp 127\.0\.0\.1:1"):
        await notifier.send(message())


async def test_webhook_is_signed_and_retried_with_backoff(
    webhook_server: tuple[str, Receiver],
) -> None:
    url, receiver = webhook_server
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    notifier = WebhookNotifier(url, SECRET, attempts=4, base_delay=0.25, sleep=sleep)
    await notifier.send(message())
    assert len(receiver.requests) == 3  # two 503s, then accepted
    assert delays == [0.25, 0.5]
    for headers, body in receiver.requests:
        assert verify(SECRET, headers["X-Volthaus-Timestamp"], body,
                      headers["X-Volthaus-Signature"])
        assert not verify("other", headers["X-Volthaus-Timestamp"], body,
                          headers["X-Volthaus-Signature"])
        assert headers["X-Volthaus-Delivery"] == "7"
    document = json.loads(receiver.requests[-1][1])
    assert (document["kind"], document["account_id"], document["language"]) == (
        "low_balance", "a-01", "de")


@pytest.mark.parametrize("webhook_server", [10], indirect=True)
async def test_webhook_gives_up_after_its_attempts(webhook_server: tuple[str, Receiver]) -> None:
    url, receiver = webhook_server
    notifier = WebhookNotifier(url, SECRET, attempts=3, sleep=no_sleep)
    with pytest.raises(DeliveryFailed, match="HTTP 503"):
        await notifier.send(message())
    assert len(receiver.requests) == 3


async def test_outbox_delivers_each_alert_once_over_both_channels(
    sqlite_factory: Factory, smtp_server: tuple[int, Inbox],
    webhook_server: tuple[str, Receiver],
) -> None:
    port, inbox = smtp_server
    url, receiver = webhook_server
    await _two_alerts(sqlite_factory)

    # The webhook fails twice per call (one attempt each): e-mail goes out, the webhook waits.
    notifiers = [SmtpNotifier("127.0.0.1", port, "wallet@volthaus.example"),
                 WebhookNotifier(url, SECRET, attempts=1, sleep=no_sleep)]
    async with sqlite_factory() as session:
        assert await deliver_pending(session, notifiers, now=lambda: AT) == 0
        assert len(inbox.mails) == 2
        assert await deliver_pending(session, notifiers, now=lambda: AT) == 2
        assert await deliver_pending(session, notifiers, now=lambda: AT) == 0
        rows = (await session.exec(select(AlertOutbox))).all()
        assert all(row.sent_at is not None and row.attempts == 2 for row in rows)
    # E-mail was not repeated when the webhook was retried.
    assert sorted(mail["Subject"] for mail in inbox.mails) == [
        "Balance below €5.00", "Guthaben unter 5,00 €"]
    assert len(receiver.requests) == 4


class SlowMail:
    """Real SMTP delivery that takes its time, as a distant mail server does."""

    name = "email"

    def __init__(self, port: int, seconds: float) -> None:
        self._smtp = SmtpNotifier("127.0.0.1", port, "wallet@volthaus.example")
        self._seconds = seconds

    async def send(self, message: AlertMessage) -> None:
        await asyncio.sleep(self._seconds)
        await self._smtp.send(message)


async def _two_alerts(factory: Factory) -> None:
    """A low-balance alert for each household (balance 6.00 - 2.00 under the 5.00 threshold)."""
    async with factory() as session:
        for account in ("a-01", "a-02"):
            await set_policy(session, account, {"low_balance_thresholds": ["5.00"]}, at=AT)
            await top_up_cash(session, account_id=account, amount=Decimal("6.00"),
                              receipt=f"R-{account}", staff="desk", at=AT)
            await debit(session, account_id=account, net=Decimal("2.00"), vat=Decimal("0"),
                        gross=Decimal("2.00"), service="base_fee", key=f"fee-{account}", at=AT)
        await session.commit()


async def _deliver_slowly(factory: Factory, port: int, seconds: float) -> int:
    async with factory() as session:
        return await deliver_pending(session, [SlowMail(port, seconds)], now=lambda: AT)


async def test_two_deliverers_at_once_send_each_alert_once(
    factory: Factory, smtp_server: tuple[int, Inbox]
) -> None:
    port, inbox = smtp_server
    await _two_alerts(factory)

    sent = await asyncio.gather(
        _deliver_slowly(factory, port, 0.2), _deliver_slowly(factory, port, 0.2)
    )
    assert sorted(sent) in ([0, 2], [1, 1])
    assert len(inbox.mails) == 2
    async with factory() as session:
        alerts = (await session.exec(select(AlertOutbox))).all()
    assert all(a.sent_at is not None and a.claimed_until is None for a in alerts)


async def test_no_write_lock_is_held_while_mail_is_sent(
    sqlite_factory: Factory, smtp_server: tuple[int, Inbox]
) -> None:
    port, inbox = smtp_server
    await _two_alerts(sqlite_factory)

    delivering = asyncio.create_task(_deliver_slowly(sqlite_factory, port, 1.0))
    await asyncio.sleep(0.2)
    # Another writer gets through at once, not after the mail server answered.
    async with asyncio.timeout(0.5), sqlite_factory() as session:
        await set_policy(session, "a-01", {"low_balance_thresholds": ["3.00"]}, at=AT)
        await session.commit()
    assert await delivering == 2
    assert len(inbox.mails) == 2


@pytest.mark.parametrize("webhook_server", [0], indirect=True)
async def test_staff_alerts_go_by_webhook_only(
    factory: Factory, smtp_server: tuple[int, Inbox], webhook_server: tuple[str, Receiver],
) -> None:
    """A suspected badge clone is for the operators: it must not be e-mailed to the household
    whose badge it is, while that household's own alert is e-mailed as before."""
    port, inbox = smtp_server
    url, receiver = webhook_server
    async with factory() as session:
        staff = await raise_alert(
            session, account_id="a-01", kind="badge_clone_suspected", at=AT, audience="staff",
            payload={"uid": "04A2B3C4", "first_point": "WB-1", "second_point": "WB-7",
                     "gap_s": 40},
        )
        household = await raise_alert(
            session, account_id="a-01", kind="charging_stopped", at=AT,
            payload={"currency": "EUR", "cost": "7.40", "device_id": "WB-1",
                     "use_id": 1, "reason": "credit_exhausted"},
        )
        assert (staff.audience, household.audience) == ("staff", "account")
        await session.commit()

    notifiers = [SmtpNotifier("127.0.0.1", port, "wallet@volthaus.example"),
                 WebhookNotifier(url, SECRET, attempts=1, sleep=no_sleep)]
    async with factory() as session:
        assert await deliver_pending(session, notifiers, now=lambda: AT) == 2
        rows = (await session.exec(select(AlertOutbox).order_by(AlertOutbox.id))).all()
    assert [(row.kind, row.payload["delivered"]) for row in rows] == [
        ("badge_clone_suspected", ["webhook"]), ("charging_stopped", ["email", "webhook"])]
    assert [mail["Subject"] for mail in inbox.mails] == ["Ladevorgang gestoppt"]
    documents = [json.loads(body) for _, body in receiver.requests]
    assert [(d["kind"], d["audience"]) for d in documents] == [
        ("badge_clone_suspected", "staff"), ("charging_stopped", "account")]
    assert "WB-7" in documents[0]["text"]


async def test_an_alert_audience_is_account_or_staff(factory: Factory) -> None:
    async with factory() as session:
        with pytest.raises(InvalidInput, match="audience"):
            await raise_alert(session, account_id="a-01", kind="badge_clone_suspected",
                              payload={}, at=AT, audience="tenants")


async def test_an_alert_about_no_account_is_for_staff_and_names_its_site(
    factory: Factory,
) -> None:
    async with factory() as session:
        with pytest.raises(InvalidInputs) as refused:
            await raise_alert(session, account_id=None, kind="device_fault", payload={}, at=AT)
        assert [field for field, _ in refused.value.errors] == ["audience", "site_id"]
        with pytest.raises(InvalidInputs) as refused:
            await raise_alert(session, account_id=None, kind="device_fault", payload={}, at=AT,
                              audience="staff")
        assert refused.value.field == "site_id"
        with pytest.raises(NotFound) as unknown:
            await raise_alert(session, account_id=None, kind="device_fault", payload={}, at=AT,
                              audience="staff", site_id="atlantis")
        assert unknown.value.field == "site_id"
        with pytest.raises(InvalidInputs) as refused:
            await raise_alert(session, account_id="a-01", kind="low_balance", payload={}, at=AT,
                              site_id="seeblick")
        assert refused.value.field == "site_id"
        with pytest.raises(NotFound) as unknown:
            await raise_alert(session, account_id="a-99", kind="low_balance", payload={}, at=AT)
        assert unknown.value.field == "account_id"
        assert (await session.exec(select(AlertOutbox))).all() == []

        device = await raise_alert(
            session, account_id=None, kind="device_fault", at=AT, audience="staff",
            site_id="lindenhof", payload={"device_id": "washer-1", "fault": "readings_lost"})
        household = await raise_alert(session, account_id="a-02", kind="low_balance", at=AT,
                                      payload={"balance": "4", "threshold": "5"})
        await session.commit()
    assert (device.account_id, device.site_id, device.audience) == (None, "lindenhof", "staff")
    # A household's alert records its account's site without being told.
    assert (household.account_id, household.site_id) == ("a-02", "lindenhof")


@pytest.mark.parametrize("webhook_server", [0], indirect=True)
async def test_device_alerts_go_to_staff_by_webhook_in_german_and_english(
    factory: Factory, smtp_server: tuple[int, Inbox], webhook_server: tuple[str, Receiver],
) -> None:
    """A laundry machine's fault belongs to no household: it is never e-mailed, and its webhook
    has no account, the site, and the text in German and then English; the household's own
    alert next to it goes out as before, in its language."""
    port, inbox = smtp_server
    url, receiver = webhook_server
    async with factory() as session:
        await raise_alert(
            session, account_id=None, kind="device_fault", at=AT, audience="staff",
            site_id="lindenhof",
            payload={"device_id": "washer-1", "fault": "relay_unreachable", "site_id":
                     "lindenhof", "detail": "no answer from 10.0.4.21:80"})
        await raise_alert(
            session, account_id="a-02", kind="laundry_done", at=AT,
            payload={"amenity": "washer-1", "kind": "washer", "cost": "1.85",
                     "running_min": 62, "currency": "EUR"})
        await session.commit()

    notifiers = [SmtpNotifier("127.0.0.1", port, "wallet@volthaus.example"),
                 WebhookNotifier(url, SECRET, attempts=1, sleep=no_sleep)]
    async with factory() as session:
        assert await deliver_pending(session, notifiers, now=lambda: AT) == 2
        rows = (await session.exec(select(AlertOutbox).order_by(AlertOutbox.id))).all()
    assert [(row.kind, row.payload["delivered"]) for row in rows] == [
        ("device_fault", ["webhook"]), ("laundry_done", ["email", "webhook"])]
    assert [(mail["To"], mail["Subject"]) for mail in inbox.mails] == [
        ("smith@example.org", "Laundry done: washer washer-1")]

    for headers, body in receiver.requests:
        assert verify(SECRET, headers["X-Volthaus-Timestamp"], body,
                      headers["X-Volthaus-Signature"])
    fault, done = (json.loads(body) for _, body in receiver.requests)
    assert (fault["account_id"], fault["site_id"], fault["audience"], fault["language"]) == (
        None, "lindenhof", "staff", "de")
    assert fault["subject"] == "Störung an washer-1: Relais nicht erreichbar"
    german, english = fault["text"].split("\n\n---\n\n")
    assert german.startswith("An washer-1 (Standort lindenhof) ist eine Störung aufgetreten")
    assert english.startswith("washer-1 (site lindenhof) has a fault: relay cannot be reached")
    assert fault["texts"] == {
        "de": {"subject": fault["subject"], "text": german},
        "en": {"subject": "Fault at washer-1: relay cannot be reached", "text": english},
    }
    assert fault["facts"]["fault"] == "relay_unreachable"
    assert (done["account_id"], done["site_id"], done["language"]) == ("a-02", "lindenhof", "en")
    assert done["texts"] == {"en": {"subject": done["subject"], "text": done["text"]}}


async def test_a_device_alert_is_never_e_mailed_even_with_e_mail_alone(
    factory: Factory, smtp_server: tuple[int, Inbox],
) -> None:
    """With e-mail the only channel, an operators' alert about a device reaches no one's inbox:
    it is done with no channel delivered (as staff alerts were before), not sent to a household."""
    port, inbox = smtp_server
    async with factory() as session:
        await raise_alert(session, account_id=None, kind="device_fault_cleared", at=AT,
                          audience="staff", site_id="lindenhof",
                          payload={"device_id": "m-a-01", "fault": "supply_relay_failed",
                                   "site_id": "lindenhof"})
        await session.commit()
    smtp = SmtpNotifier("127.0.0.1", port, "wallet@volthaus.example")
    async with factory() as session:
        assert await deliver_pending(session, [smtp], now=lambda: AT) == 1
        (row,) = (await session.exec(select(AlertOutbox))).all()
    assert row.payload["delivered"] == [] and row.sent_at is not None
    assert inbox.mails == []
