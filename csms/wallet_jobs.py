"""The wallet's periodic work in a running node: deliver queued alerts, and book each day's
debt-recovery rate (Tagesrate). Both are idempotent, so a restart or a second node repeats
nothing that moved money; alert delivery remembers which channels are done per alert."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from csms.db.engine import session_factory
from csms.inventory.models import Site
from csms.settings import Settings
from wallet.models import Account, CreditPolicyRecord
from wallet.notify import (
    HouseholdWebhookNotifier,
    Notifier,
    SmtpNotifier,
    WebhookNotifier,
    deliver_pending,
)
from wallet.service import recover_debt_daily

log = structlog.get_logger("csms.wallet_jobs")

Clock = Callable[[], datetime]


def notifiers_from_settings(settings: Settings) -> list[Notifier]:
    """The site-wide alert channels the settings configure (Settings insists on a webhook's
    secret); households' own webhooks come on top (`alert_channels`)."""
    channels: list[Notifier] = []
    if settings.smtp_host:
        channels.append(SmtpNotifier(settings.smtp_host, settings.smtp_port, settings.smtp_from))
    if settings.webhook_url and settings.webhook_secret:
        channels.append(WebhookNotifier(settings.webhook_url, settings.webhook_secret))
    return channels


def alert_channels(settings: Settings) -> tuple[list[Notifier], bool]:
    """Every channel alerts go out by (the site-wide ones and households' own webhooks), and
    whether only households with their own webhook are to be served: without a site-wide
    channel the other alerts stay queued until one is configured, rather than being marked
    as sent to nobody."""
    site_wide = notifiers_from_settings(settings)
    household = HouseholdWebhookNotifier(allow_private=settings.household_webhook_private_ok)
    return [*site_wide, household], not site_wide


async def deliver_alerts_once(engine: AsyncEngine, notifiers: list[Notifier], clock: Clock,
                              *, household_webhooks_only: bool = False) -> int:
    async with session_factory(engine)() as session:
        return await deliver_pending(session, notifiers, now=clock,
                                     household_webhooks_only=household_webhooks_only)


async def recover_debts_once(engine: AsyncEngine, clock: Clock) -> int:
    """Book today's daily rate (in each site's own calendar) for every account with a policy;
    returns how many accounts have an entry for today (a repeated call finds the same ones)."""
    now = clock()
    booked = 0
    async with session_factory(engine)() as session:
        rows = (
            await session.exec(
                select(Account.id, Site.timezone)
                .join(CreditPolicyRecord, col(CreditPolicyRecord.account_id) == Account.id)
                .join(Site, col(Site.id) == Account.site_id)
            )
        ).all()
    for account_id, timezone in rows:
        day: date = now.astimezone(ZoneInfo(timezone)).date()
        async with session_factory(engine)() as session:
            if await recover_debt_daily(session, account_id, day=day, at=now) is not None:
                booked += 1
            await session.commit()
    return booked


async def _every(interval_s: float, name: str, work: Callable[[], Awaitable[int]]) -> None:
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failing round is logged and retried, never ends the node
            log.exception("wallet_job_failed", job=name)
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def wallet_jobs(
    settings: Settings, engine: AsyncEngine, clock: Clock
) -> AsyncIterator[None]:
    """Run the jobs in the background while the context is open."""
    notifiers, households_only = alert_channels(settings)
    tasks = [
        asyncio.create_task(
            _every(3600, "debt-recovery", lambda: recover_debts_once(engine, clock)),
            name="wallet-debt-recovery",
        )
    ]
    if households_only:
        log.info("wallet_alerts_queued_only", reason="no smtp_host or webhook_url configured",
                 except_for="households' own webhooks")
    tasks.append(
        asyncio.create_task(
            _every(
                settings.alert_interval_s, "alerts",
                lambda: deliver_alerts_once(engine, notifiers, clock,
                                            household_webhooks_only=households_only),
            ),
            name="wallet-alerts",
        )
    )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
