"""Money a person types in: a cash top-up, the value of a voucher.

One rule for every path (API, CLI, the wallet functions themselves): the amount is written as
plain decimal digits, is greater than zero, has no digit finer than the currency's minor unit, and
is at most the site's maximum for that kind of input. `amount_problems` is pure and returns every
problem with its field; `accept_amount` raises them all at once (`AmountInvalid`).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from wallet.errors import InvalidInputs

# The site's maximum per top-up and per voucher when its site file sets none.
DEFAULT_MAXIMUM = Decimal("500.00")
# The largest maximum a site may set (far below what the ledger's integer columns hold).
CEILING = Decimal("1000000")

# ISO 4217 currencies whose minor unit is not the cent (exponent 2 is the rule).
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}

_PLAIN = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: 0.01 EUR, 1 JPY, 0.001 KWD."""
    return Decimal(1).scaleb(-_EXPONENTS.get(currency.upper(), 2))


def amount_text(amount: Decimal, currency: str) -> str:
    """`amount` with exactly the currency's decimals (500 EUR -> "500.00")."""
    return str(amount.quantize(minor_unit(currency)))


class AmountInvalid(InvalidInputs):
    """A typed-in amount broke the money rule; `errors` lists every problem with its field."""


def _read(value: object, field: str) -> Decimal | tuple[str, str]:
    """The amount `value` stands for, or the problem that it stands for none."""
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN.fullmatch(text):
            shown = text if len(text) <= 40 else text[:37] + "..."
            return (field, f"{shown!r} is not a decimal amount (digits with an optional "
                           f'decimal point, e.g. "20.00")')
        return Decimal(text)
    if isinstance(value, Decimal):
        return value if value.is_finite() else (field, "must be a finite amount")
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return (field, 'must be a decimal amount written as text, e.g. "20.00"')


def _check(
    value: object, field: str, *, currency: str, maximum: Decimal, per: str
) -> tuple[Decimal | None, list[tuple[str, str]]]:
    amount = _read(value, field)
    if isinstance(amount, tuple):
        return None, [amount]
    problems: list[tuple[str, str]] = []
    if amount <= 0:
        problems.append((field, f"must be greater than zero, got {amount}"))
    unit = minor_unit(currency)
    try:
        finer = amount != amount.quantize(unit)
    except InvalidOperation:  # more digits than the context holds: far above any maximum
        finer = False
    if finer:
        problems.append((field, f"{amount} has more decimals than the minor unit of "
                                f"{currency} ({unit})"))
    if amount > maximum:
        problems.append((field, f"{amount} is above this site's maximum of "
                                f"{amount_text(maximum, currency)} {currency} {per}"))
    return amount, problems


def amount_problems(
    value: object, field: str, *, currency: str, maximum: Decimal, per: str
) -> list[tuple[str, str]]:
    """Every problem with `value` as an amount of `currency` at most `maximum` (`per` names the
    kind of input in the message: "per top-up"). Text must be plain digits ("20.00"); a Decimal
    or int is taken as it is; anything else (float, bool, None) is refused."""
    return _check(value, field, currency=currency, maximum=maximum, per=per)[1]


def accept_amount(
    value: object, field: str, *, currency: str, maximum: Decimal, per: str
) -> Decimal:
    """`value` as a Decimal when it keeps the money rule, else `AmountInvalid` with every
    problem."""
    amount, problems = _check(value, field, currency=currency, maximum=maximum, per=per)
    if problems or amount is None:
        raise AmountInvalid(problems)
    return amount


def limit_problems(value: object, field: str, *, currency: str) -> list[tuple[str, str]]:
    """Problems with a site's maximum itself: an amount of `currency`, at most `CEILING`."""
    return amount_problems(value, field, currency=currency, maximum=CEILING,
                           per="for a site's maximum")
