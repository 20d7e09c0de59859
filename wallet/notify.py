"""Delivering wallet alerts: a small `Notifier` interface with an SMTP and a signed-webhook
implementation, and the outbox dispatcher.

Both implementations take their addresses and secrets as arguments (the composition root in
`csms` reads them from settings). Webhooks are signed with HMAC-SHA256 over
`"{timestamp}.{body}"` (header `X-Volthaus-Signature: sha256=<hex>`, timestamp in
`X-Volthaus-Timestamp`) and retried with exponential backoff on connection errors, 429 and 5xx.
`X-Volthaus-Delivery` carries the alert id, so a receiver can drop a retried duplicate.

A household's alert is written in its account's language. An alert about a site's device with no
account (for staff) has no reader whose language we know, and sites record none: it is written in
German and English (`STAFF_LANGUAGES`), German first as operators in Germany, Austria and
Switzerland read it, English for the service partners and installers who do not. Its `subject`
is the German one, its `body` the German text followed by the English, and the webhook's `texts`
carries each language apart for receivers that pick one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import smtplib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.alert_outbox import Audience
from wallet.models import Account, AlertOutbox
from wallet.texts import render

MAX_ATTEMPTS = 8
# How long a deliverer holds the alerts it took (far longer than a delivery's timeouts).
CLAIM_S = 300


# The languages of an alert for staff about no account, the first one foremost.
STAFF_LANGUAGES = ("de", "en")
# Between the languages of a message written in several.
LANGUAGE_BREAK = "\n\n---\n\n"


@dataclass(frozen=True, slots=True)
class AlertMessage:
    alert_id: int
    # As the account's site calls it (`account.ref`), with `site_id`; None for an alert about a
    # site's device (staff only).
    account_id: str | None
    kind: str
    language: str  # of `subject` (and of `body`, which may follow it with other languages)
    subject: str
    body: str
    facts: Mapping[str, Any]
    created_at: datetime
    email: str | None
    site_id: str = ""
    # "account" (the household) or "staff" (operators: the webhook only, see `deliver_pending`).
    audience: str = Audience.ACCOUNT
    # (subject, body) per language the alert was written in; empty: `language` only.
    texts: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # The household's own webhook and signing key (`HouseholdWebhookNotifier`), if it set one.
    webhook_url: str | None = None
    webhook_secret: str | None = None

    def by_language(self) -> dict[str, tuple[str, str]]:
        return dict(self.texts) or {self.language: (self.subject, self.body)}


class DeliveryFailed(Exception):
    pass


class Notifier(Protocol):
    """One channel. `send` returns when delivered and raises `DeliveryFailed` otherwise; a
    channel that does not apply to the account (no e-mail address) returns without sending."""

    name: str

    async def send(self, message: AlertMessage) -> None: ...


class SmtpNotifier:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    def _message(self, message: AlertMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.email or ""
        mail["Subject"] = message.subject
        mail["Content-Language"] = message.language
        mail["X-Volthaus-Alert"] = f"{message.kind}/{message.alert_id}"
        mail.set_content(message.body)
        return mail

    def _send_blocking(self, mail: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
            client.send_message(mail)

    async def send(self, message: AlertMessage) -> None:
        if not message.email:
            return
        try:
            # smtplib blocks; a thread keeps the event loop (and the OCPP server on it) running.
            await asyncio.to_thread(self._send_blocking, self._message(message))
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"smtp {self.host}:{self.port}: {exc}") from exc


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time check of a webhook's signature."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("webhook_secret: a signing secret is required")
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock

    def body(self, message: AlertMessage) -> bytes:
        return json.dumps({
            "id": message.alert_id, "kind": message.kind, "site_id": message.site_id,
            "account_id": message.account_id,
            "language": message.language, "subject": message.subject, "text": message.body,
            "facts": dict(message.facts), "created_at": message.created_at.isoformat(),
            "audience": message.audience,
            "texts": {language: {"subject": subject, "text": text}
                      for language, (subject, text) in message.by_language().items()},
        }, separators=(",", ":"), ensure_ascii=False).encode()

    def delay(self, attempt: int) -> float:
        """Backoff before retry `attempt` (1-based): base, 2x base, 4x base, ... capped."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    async def send(self, message: AlertMessage) -> None:
        body = self.body(message)
        last = "no attempt"
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for attempt in range(1, self.attempts + 1):
                timestamp = str(int(self.clock()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Volthaus-Timestamp": timestamp,
                    "X-Volthaus-Signature": sign(self.secret, timestamp, body),
                    "X-Volthaus-Delivery": str(message.alert_id),
                }
                try:
                    response = await client.post(self.url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if response.is_success:
                        return
                    last = f"HTTP {response.status_code}"
                    if response.status_code != 429 and response.status_code < 500:
                        break  # the receiver refuses this request; repeating will not help
                if attempt < self.attempts:
                    await self.sleep(self.delay(attempt))
        raise DeliveryFailed(f"webhook {self.url}: {last}")


def household_webhook_problem(url: str) -> str | None:
    """Why `url` cannot be a household's webhook (None: it can). Where it points is checked
    again at each delivery (`HouseholdWebhookNotifier`), as names resolve anew."""
    if len(url) > 500:
        return "must be at most 500 characters"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "is not a URL"
    if parsed.scheme not in ("https", "http"):
        return "must start with https:// (or http://)"
    if not parsed.host:
        return "names no host"
    if parsed.userinfo:
        return "must not carry a user name or password"
    return None


async def _private_address(host: str) -> str | None:
    """The first loopback, private, link-local or reserved address `host` resolves to."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return None  # unresolvable: the POST itself fails and is retried
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return str(address)
    return None


class HouseholdWebhookNotifier:
    """Each household's own webhook, signed with its own key, as `WebhookNotifier` signs.

    Residents choose these addresses, so by default a delivery refuses one that resolves to
    the operator's own network (loopback, private, link-local): a resident must not make the
    server POST into it. `allow_private` lifts that for sites whose households are on the LAN
    (and for tests on 127.0.0.1). Alerts for staff never go here."""

    name = "household_webhook"

    def __init__(self, *, allow_private: bool = False, **webhook: Any) -> None:
        self.allow_private = allow_private
        self.webhook = webhook

    async def send(self, message: AlertMessage) -> None:
        if message.audience == Audience.STAFF or not message.webhook_url \
                or not message.webhook_secret:
            return
        problem = household_webhook_problem(message.webhook_url)
        if problem is not None:
            raise DeliveryFailed(f"household webhook {message.webhook_url!r} {problem}")
        if not self.allow_private:
            host = httpx.URL(message.webhook_url).host
            private = await _private_address(host)
            if private is not None:
                raise DeliveryFailed(
                    f"household webhook {message.webhook_url}: {host} is a private address "
                    f"({private}); refused")
        channel = WebhookNotifier(message.webhook_url, message.webhook_secret, **self.webhook)
        await channel.send(message)


async def deliver_pending(
    session: AsyncSession,
    notifiers: list[Notifier],
    *,
    now: Callable[[], datetime],
    limit: int = 100,
    household_webhooks_only: bool = False,
) -> int:
    """Send undelivered alerts over every channel, oldest first; returns how many were completed.

    COMMITS: first the claim of the alerts it takes (so that another process delivering at the
    same time skips them, and so that no transaction, and on SQLite no write lock, stays open
    while mail servers and webhooks answer), then each alert's record after its delivery. A
    channel that fails is retried on a later call, up to `MAX_ATTEMPTS`; the channels already
    done are remembered and not repeated. A claim lapses after `CLAIM_S` (a deliverer that died).
    `household_webhooks_only`: only alerts of households with their own webhook are taken (a
    site without a site-wide channel keeps the others queued until it has one).

    Alerts for staff (`audience` "staff", e.g. a suspected badge clone, a device's fault) go
    out by webhook only: the e-mail channel, which writes to the household, skips them. One
    about no account is written in `STAFF_LANGUAGES` (module docstring).
    """
    moment = now()
    free = or_(col(AlertOutbox.claimed_until).is_(None), col(AlertOutbox.claimed_until) < moment)
    query = select(AlertOutbox.id).where(
        col(AlertOutbox.sent_at).is_(None), AlertOutbox.attempts < MAX_ATTEMPTS, free)
    if household_webhooks_only:
        query = query.join(Account, col(Account.id) == AlertOutbox.account_id).where(
            col(Account.webhook_url).is_not(None), AlertOutbox.audience == Audience.ACCOUNT)
    candidates = (
        await session.exec(query.order_by(col(AlertOutbox.id)).limit(limit))
    ).all()
    claimed: list[int] = []
    for alert_id in candidates:
        if alert_id is None:
            continue
        taken = await session.exec(
            update(AlertOutbox)
            .where(col(AlertOutbox.id) == alert_id, col(AlertOutbox.sent_at).is_(None), free)
            .values(claimed_until=moment + timedelta(seconds=CLAIM_S))
        )
        if taken.rowcount == 1:
            claimed.append(alert_id)
    rows = (
        await session.exec(
            select(AlertOutbox, Account)
            .join(Account, col(Account.id) == AlertOutbox.account_id, isouter=True)
            .where(col(AlertOutbox.id).in_(claimed))
            .order_by(col(AlertOutbox.id))
        )
    ).all() if claimed else []
    await session.commit()
    completed = 0
    for alert, account in rows:
        message = _message(alert, account)
        done = set(alert.payload.get("delivered", []))
        errors = []
        for notifier in notifiers:
            if notifier.name in done:
                continue
            if notifier.name == SmtpNotifier.name and (
                alert.audience == Audience.STAFF or account is None
            ):
                continue  # never e-mailed to the household (and there is none)
            try:
                await notifier.send(message)
            except DeliveryFailed as exc:
                errors.append(str(exc))
            else:
                done.add(notifier.name)
        alert.attempts += 1
        alert.payload = {**alert.payload, "delivered": sorted(done)}
        if errors:
            alert.last_error = "; ".join(errors)
        else:
            alert.sent_at = now()
            alert.last_error = None
            completed += 1
        alert.claimed_until = None
        session.add(alert)
        await session.commit()
    return completed


def _message(alert: AlertOutbox, account: Account | None) -> AlertMessage:
    facts = {k: v for k, v in alert.payload.items() if k != "delivered"}
    if account is not None:
        subject, body = render(alert.kind, account.language, alert.payload)
        return AlertMessage(
            alert_id=alert.id or 0, account_id=account.ref, site_id=account.site_id,
            kind=alert.kind, language=account.language, subject=subject, body=body,
            facts=facts, created_at=alert.created_at, email=account.email,
            audience=alert.audience, webhook_url=account.webhook_url,
            webhook_secret=account.webhook_secret,
        )
    texts = {language: render(alert.kind, language, alert.payload)
             for language in STAFF_LANGUAGES}
    first = STAFF_LANGUAGES[0]
    return AlertMessage(
        alert_id=alert.id or 0, account_id=None, site_id=alert.site_id or "", kind=alert.kind,
        language=first, subject=texts[first][0],
        body=LANGUAGE_BREAK.join(body for _, body in texts.values()),
        facts=facts, created_at=alert.created_at, email=None, audience=alert.audience,
        texts=texts,
    )
