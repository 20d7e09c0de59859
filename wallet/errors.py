"""Typed errors of the wallet. Each names the offending field (when input is at fault) and carries
a stable machine-readable `code`, so the edge (API, CLI) can answer without parsing messages."""

from __future__ import annotations

from typing import Any


class WalletError(Exception):
    code = "wallet_error"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field
        self.details = details


class InvalidInput(WalletError):
    """Bad input; nothing was changed."""

    code = "invalid"


class InvalidInputs(InvalidInput):
    """Several problems with the input at once, each with its field (`errors`: (field, message)
    pairs); nothing was changed."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.field = errors[0][0] if errors else None
        self.errors = errors


class UnbalancedEntry(InvalidInput):
    code = "unbalanced"


class NotFound(WalletError):
    code = "not_found"


class IdempotencyConflict(WalletError):
    """The key was used before for a different movement: a bug in the caller's key derivation."""

    code = "idempotency_conflict"


class HoldClosed(WalletError):
    """The hold was already settled or released under another key."""

    code = "hold_closed"


class CreditRefused(WalletError):
    """A start or a raise of a hold was refused by the credit rules; `reason` says why."""

    code = "credit_refused"

    def __init__(self, message: str, *, reason: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.reason = reason
