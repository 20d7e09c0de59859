"""The money rule for typed-in amounts: every problem, with its field, from one pure function."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wallet.amounts import AmountInvalid, accept_amount, amount_problems, minor_unit

MAX = Decimal("500.00")


def problems(value: object, currency: str = "EUR") -> list[tuple[str, str]]:
    return amount_problems(value, "amount", currency=currency, maximum=MAX, per="per top-up")


@pytest.mark.parametrize(("value", "message"), [
    ("10.005", "10.005 has more decimals than the minor unit of EUR (0.01)"),
    ("99999999999999", "99999999999999 is above this site's maximum of 500.00 EUR per top-up"),
    ("1e30", "'1e30' is not a decimal amount"),
    ("NaN", "'NaN' is not a decimal amount"),
    ("Infinity", "'Infinity' is not a decimal amount"),
    ("1_000", "'1_000' is not a decimal amount"),
    ("-5", "must be greater than zero, got -5"),
    ("0", "must be greater than zero, got 0"),
    ("", "'' is not a decimal amount"),
    (10.5, "must be a decimal amount written as text"),
    (True, "must be a decimal amount written as text"),
    (None, "must be a decimal amount written as text"),
    (Decimal("NaN"), "must be a finite amount"),
    (Decimal("1E+30"), "is above this site's maximum"),
])
def test_absurd_amounts_are_refused_naming_the_field(value: object, message: str) -> None:
    found = problems(value)
    assert found and all(field == "amount" for field, _ in found)
    assert any(message in text for _, text in found), found


def test_every_problem_is_returned_at_once() -> None:
    assert problems("-5000.001") == [
        ("amount", "must be greater than zero, got -5000.001"),
        ("amount", "-5000.001 has more decimals than the minor unit of EUR (0.01)"),
    ]
    assert [text for _, text in problems("600.005")] == [
        "600.005 has more decimals than the minor unit of EUR (0.01)",
        "600.005 is above this site's maximum of 500.00 EUR per top-up",
    ]


def test_good_amounts_and_the_currencys_minor_unit() -> None:
    for value in ("0.01", "500", "500.00", " 20.5 ", Decimal("499.99"), 7):
        assert problems(value) == [], value
    assert accept_amount(" 20.50 ", "amount", currency="EUR", maximum=MAX,
                         per="per top-up") == Decimal("20.50")
    assert (minor_unit("EUR"), minor_unit("JPY"), minor_unit("KWD")) == (
        Decimal("0.01"), Decimal("1"), Decimal("0.001"))
    assert problems("100.5", "JPY") == [
        ("amount", "100.5 has more decimals than the minor unit of JPY (1)")]
    assert problems("1.125", "KWD") == []
    with pytest.raises(AmountInvalid) as refused:
        accept_amount("0.001", "value", currency="EUR", maximum=MAX, per="per voucher")
    assert refused.value.errors == [
        ("value", "0.001 has more decimals than the minor unit of EUR (0.01)")]
