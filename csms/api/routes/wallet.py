"""The prepaid wallet over HTTP: balance and ledger, cash top-ups, voucher batches and
redemption, emergency credit, credit policies. Amounts travel as decimal strings.

Residents reach only their own account (403 otherwise); staff (admin, owner) their site's.
`{account_id}` is the account's id on its site (`a-01`); an admin token adds `?site=` when that
id is on several sites (409 otherwise). See `csms.api.deps.site_account`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from csms.api.deps import DbSession, Principal, require_roles, site_account
from csms.api.problems import invalid, problem_response, problem_responses
from wallet.credit import CreditPolicy, whole_policy
from wallet.errors import (
    CreditRefused,
    HoldClosed,
    IdempotencyConflict,
    InvalidInput,
    InvalidInputs,
    NotFound,
    WalletError,
)
from wallet.service import (
    WalletView,
    activate_emergency_credit,
    get_policy,
    ledger_page,
    patch_policy,
    set_policy,
    top_up_cash,
    wallet_view,
)
from wallet.vouchers import create_batch, redeem_voucher

# What `_error` and `site_account` can answer, on every route here.
router = APIRouter(tags=["wallet"], responses=problem_responses(
    400, 404, 409, why_400="the wallet refused the operation (`code` says why)",
    why_409="an account id on several sites, or a conflict with the wallet's state"))

Staff = Annotated[Principal, Depends(require_roles("admin", "owner"))]
Reader = Annotated[Principal, Depends(require_roles("admin", "owner", "resident"))]
Resident = Annotated[Principal, Depends(require_roles("resident"))]
Owner = Annotated[Principal, Depends(require_roles("admin", "owner"))]


def amount_text(value: Decimal) -> str:
    """Money as a decimal string with at least the two decimals of the minor unit."""
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value else str(value.normalize())


def _error(error: WalletError) -> JSONResponse:
    if isinstance(error, InvalidInputs):
        return invalid(error.errors)
    if isinstance(error, InvalidInput):
        return invalid([str(error)])
    if isinstance(error, NotFound):
        return problem_response(status.HTTP_404_NOT_FOUND, str(error))
    extensions: dict[str, Any] = {"code": error.code}
    if isinstance(error, CreditRefused):
        extensions["reason"] = error.reason
    if isinstance(error, IdempotencyConflict | HoldClosed | CreditRefused):
        return problem_response(status.HTTP_409_CONFLICT, str(error), **extensions)
    return problem_response(status.HTTP_400_BAD_REQUEST, str(error), **extensions)

SiteParam = Annotated[str | None, Query(
    description="the account's site; an admin token needs it when the id is on several sites"
)]


async def _scope(session: DbSession, principal: Principal, ref: str, site: str | None) -> str:
    """The internal key of the account `ref`, after checking the caller may act on it
    (404 / 409 / 403, see `site_account`)."""
    return (await site_account(session, principal, ref, site)).id


def _view(view: WalletView) -> dict[str, Any]:
    return {
        "currency": view.currency,
        "balance": amount_text(view.balance),
        "available": amount_text(view.available),
        "holds": amount_text(view.holds),
        "credit": amount_text(view.credit),
        "emergency_credit_active": view.emergency_active,
        "emergency_credit_available": view.emergency_available,
        "mode": view.mode,
    }


@router.get("/accounts/{account_id}/wallet", summary="Balance, holds, credit and available")
async def wallet_route(
    account_id: str, session: DbSession, principal: Reader, site: SiteParam = None
) -> Any:
    account_id = await _scope(session, principal, account_id, site)
    return _view(await wallet_view(session, account_id, datetime.now(UTC)))


@router.get("/accounts/{account_id}/ledger", summary="The wallet's ledger lines, newest first")
async def ledger_route(
    account_id: str,
    session: DbSession,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(description="next_before of the previous page")] = None,
    site: SiteParam = None,
) -> Any:
    account_id = await _scope(session, principal, account_id, site)
    page = await ledger_page(session, account_id, limit=limit, before=before)
    return {
        "lines": [
            {"id": line.posting_id, "entry_id": line.entry_id, "at": line.at.isoformat(),
             "kind": line.kind, "amount": amount_text(line.amount),
             "description": line.description, "reference": line.reference,
             "reason": line.reason, "staff": line.staff}
            for line in page.lines
        ],
        "next_before": page.next_before,
    }


class TopUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Any
    reference: str


@router.post("/accounts/{account_id}/topups", summary="Cash top-up at a desk (receipt number)",
             status_code=status.HTTP_201_CREATED)
async def topup_route(
    account_id: str, body: TopUpBody, session: DbSession, principal: Staff,
    site: SiteParam = None,
) -> Any:
    account_id = await _scope(session, principal, account_id, site)
    try:
        result = await top_up_cash(
            session, account_id=account_id, amount=body.amount,
            receipt=body.reference, staff=principal.token_id, at=datetime.now(UTC),
        )
    except WalletError as error:
        await session.rollback()
        return _error(error)
    await session.commit()
    answer = {
        "entry_id": result.entry.id,
        "amount": amount_text(result.credited + result.debt_recovered),
        "credited": amount_text(result.credited),
        "debt_recovered": amount_text(result.debt_recovered),
        "balance": amount_text(result.balance), "replayed": result.entry.replayed,
    }
    code = status.HTTP_200_OK if result.entry.replayed else status.HTTP_201_CREATED
    return JSONResponse(answer, code)


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any
    count: int
    expires_at: datetime
    site_id: str | None = None
    reference: str | None = None


@router.post("/vouchers/batches", summary="Create a batch of voucher codes (printable list)",
             status_code=status.HTTP_201_CREATED)
async def batch_route(body: BatchBody, session: DbSession, principal: Owner) -> Any:
    site_id = body.site_id or principal.site_id
    if site_id is None:
        return invalid(["site_id: required for an admin token"])
    principal.ensure_site(site_id)
    try:
        batch = await create_batch(
            session, site_id=site_id, value=body.value, count=body.count,
            expires_at=body.expires_at, key=f"batch:{site_id}:{body.reference or uuid.uuid4()}",
            staff=principal.token_id, at=datetime.now(UTC),
        )
    except WalletError as error:
        await session.rollback()
        return _error(error)
    await session.commit()
    answer = {
        "batch_id": batch.id, "site_id": batch.site_id, "value": amount_text(batch.value),
        "count": batch.count, "expires_at": batch.expires_at.isoformat(),
        # Shown once: only digests are stored. A replayed request gets null.
        "codes": list(batch.codes) if batch.codes is not None else None,
    }
    code = status.HTTP_201_CREATED if batch.codes is not None else status.HTTP_200_OK
    return JSONResponse(answer, code)


class RedeemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str


@router.post("/vouchers/redeem", summary="Redeem a voucher code onto the resident's wallet",
             responses=problem_responses(429, why_429="too many failed codes: locked for a while "
                                         "(Retry-After)"))
async def redeem_route(body: RedeemBody, session: DbSession, principal: Resident) -> Any:
    account_id = principal.account_id  # the internal key the token is bound to
    if account_id is None or principal.account_ref is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is bound to no account")
    account_id = await _scope(session, principal, principal.account_ref, None)
    result = await redeem_voucher(session, account_id=account_id, code=body.code,
                                  at=datetime.now(UTC))
    # Committed either way: a failed attempt must count towards the lock.
    await session.commit()
    if result.ok:
        view = await wallet_view(session, account_id, datetime.now(UTC))
        return {"status": result.reason, "amount": amount_text(result.amount or Decimal(0)),
                "wallet": _view(view)}
    refused = f"voucher refused ({result.reason})"
    extensions: dict[str, Any] = {
        "reason": result.reason, "failures": result.failures,
        "locked_until": result.locked_until.isoformat() if result.locked_until else None,
    }
    if result.reason == "locked":
        seconds = max(1, int((result.locked_until - datetime.now(UTC)).total_seconds())
                      if result.locked_until else 1)
        return problem_response(status.HTTP_429_TOO_MANY_REQUESTS, f"code: {refused}",
                                headers={"Retry-After": str(seconds)}, **extensions)
    return problem_response(status.HTTP_422_UNPROCESSABLE_CONTENT, f"code: {refused}",
                            [("code", refused)], **extensions)

@router.post("/accounts/{account_id}/emergency-credit",
             summary="The resident switches on the emergency credit of their policy")
async def emergency_route(account_id: str, session: DbSession, principal: Resident) -> Any:
    account_id = await _scope(session, principal, account_id, None)
    try:
        view = await activate_emergency_credit(session, account_id, at=datetime.now(UTC))
    except WalletError as error:
        await session.rollback()
        return _error(error)
    await session.commit()
    return _view(view)


@router.get("/accounts/{account_id}/credit-policy", summary="The account's credit policy")
async def get_policy_route(
    account_id: str, session: DbSession, principal: Owner, site: SiteParam = None
) -> Any:
    account_id = await _scope(session, principal, account_id, site)
    return (await get_policy(session, account_id)).to_document()


async def _policy_body(request: Request) -> Any:
    """The JSON body, or `ValueError` when it is not JSON."""
    return await request.json()


@router.put("/accounts/{account_id}/credit-policy",
            summary="Replace the account's credit policy: the whole document, every field "
                    "(422 names each missing one)")
async def put_policy_route(account_id: str, request: Request, session: DbSession,
                           principal: Owner, site: SiteParam = None) -> Any:
    account_id = await _scope(session, principal, account_id, site)
    try:
        document = await _policy_body(request)
    except ValueError:
        return invalid(["body: not JSON"])
    try:
        policy: CreditPolicy = await set_policy(session, account_id, whole_policy(document),
                                                staff=principal.token_id, at=datetime.now(UTC))
    except WalletError as error:
        await session.rollback()
        return _error(error)
    await session.commit()
    return policy.to_document()


@router.patch("/accounts/{account_id}/credit-policy",
              summary="Change only the fields sent of the account's credit policy (friendly and "
                      "debt_recovery merge field by field)")
async def patch_policy_route(account_id: str, request: Request, session: DbSession,
                             principal: Owner, site: SiteParam = None) -> Any:
    account_id = await _scope(session, principal, account_id, site)
    try:
        patch = await _policy_body(request)
    except ValueError:
        return invalid(["body: not JSON"])
    try:
        policy = await patch_policy(session, account_id, patch, staff=principal.token_id,
                                    at=datetime.now(UTC))
    except WalletError as error:
        await session.rollback()
        return _error(error)
    await session.commit()
    return policy.to_document()
