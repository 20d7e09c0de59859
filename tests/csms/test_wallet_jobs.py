"""The running node delivers queued wallet alerts over real SMTP, and books daily debt rates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from csms.db.engine import session_factory
from csms.inventory.sitefile import import_site_file
from csms.serve import running_node
from csms.wallet_jobs import recover_debts_once
from tests.conftest import Inbox, node_settings
from wallet.service import debit, record_debt, set_policy, wallet_view

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
AT = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)


async def test_node_sends_a_low_balance_mail(
    tmp_path: Path, smtp_server: tuple[int, Inbox]
) -> None:
    port, inbox = smtp_server
    settings = node_settings(
        f"sqlite:///{tmp_path / 'jobs.db'}", smtp_host="127.0.0.1", smtp_port=port,
        alert_interval_s=0.05,
    )
    async with running_node(settings, site_file=DEMO) as node:
        async with session_factory(node.engine)() as session:
            await set_policy(session, "a-03", {"low_balance_thresholds": ["15.00"]}, at=AT)
            await debit(session, account_id="a-03", net=Decimal("6.00"), vat=Decimal("0"),
                        gross=Decimal("6.00"), service="base_fee", key="fee-1", at=AT)
            await session.commit()
        for _ in range(200):
            if inbox.mails:
                break
            await asyncio.sleep(0.05)
    assert len(inbox.mails) == 1
    mail = inbox.mails[0]
    assert mail["To"] == "brandt@example.org"
    assert "15,00" in mail["Subject"]  # German account: German text and number format


async def test_daily_debt_rate_is_booked_once_per_local_day(sqlite_engine: object) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(sqlite_engine, AsyncEngine)
    await import_site_file(sqlite_engine, DEMO)
    async with session_factory(sqlite_engine)() as session:
        await set_policy(session, "b-01", {"debt_recovery": {"daily_rate": "1.50"}}, at=AT)
        await record_debt(session, account_id="b-01", amount=Decimal("10.00"), key="debt-1",
                          reason="arrears", staff="desk", at=AT)
        await session.commit()
    assert await recover_debts_once(sqlite_engine, lambda: AT) == 1
    assert await recover_debts_once(sqlite_engine, lambda: AT) == 1  # the same entry, not a new one
    async with session_factory(sqlite_engine)() as session:
        view = await wallet_view(session, "b-01", AT)
    assert view.balance == Decimal("38.50")


def test_a_webhook_without_its_secret_is_a_bad_setting() -> None:
    import pydantic
    import pytest

    from csms.settings import Settings

    with pytest.raises(pydantic.ValidationError, match="webhook_secret"):
        Settings(webhook_url="http://127.0.0.1:9/alerts")
    assert Settings(webhook_url="http://127.0.0.1:9/alerts", webhook_secret="s").webhook_secret
