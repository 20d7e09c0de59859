"""The seam for online payments (out of scope for now): a provider implements `PaymentProvider`;
its confirmed payments become top-ups through `record_online_payment`, booked against the
provider's clearing account and keyed by the provider's payment id, so a webhook delivered twice
tops up once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from wallet.errors import InvalidInput
from wallet.ledger import LedgerKind, account_site, site_account
from wallet.topups import TopUp, top_up


@dataclass(frozen=True, slots=True)
class Checkout:
    """Where to send the resident to pay."""

    provider_reference: str
    redirect_url: str


@dataclass(frozen=True, slots=True)
class ConfirmedPayment:
    provider_reference: str
    account_id: str
    amount: Decimal
    currency: str


class PaymentProvider(Protocol):
    name: str

    async def create_checkout(
        self, *, account_id: str, amount: Decimal, currency: str, return_url: str
    ) -> Checkout: ...

    async def confirm(self, body: bytes, headers: Mapping[str, str]) -> ConfirmedPayment | None:
        """Verify the provider's notification (signature and all); None if it is not a
        completed payment."""
        ...


async def record_online_payment(
    session: AsyncSession, provider: str, payment: ConfirmedPayment, *, at: datetime
) -> TopUp:
    """Book a confirmed payment as a top-up (once per provider reference). Locks the wallet;
    flushes, does not commit."""
    _, site = await account_site(session, payment.account_id)
    if payment.currency != site.currency:
        raise InvalidInput(f"{payment.currency} payment for a {site.currency} wallet",
                           field="currency")
    return await top_up(
        session, account_id=payment.account_id, amount=payment.amount,
        key=f"payment:{provider}:{payment.provider_reference}",
        source=site_account(site.id, LedgerKind.PAYMENTS, provider), kind="payment",
        reference=payment.provider_reference, description=f"online payment ({provider})", at=at,
    )
