"""Money as typed in forms and sent in JSON: exact cents, never a float."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tresor_crm.pipeline import DealFields, format_money, format_money_input, parse_money


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.234,56", "1234.56"),
        ("1234,56", "1234.56"),
        ("1234.56", "1234.56"),
        ("1,234.56", "1234.56"),
        ("1.234.567,8", "1234567.80"),
        ("1,234,567", "1234567.00"),
        ("1.234", "1234.00"),
        ("1234,5", "1234.50"),
        ("0,99", "0.99"),
        ("12", "12.00"),
        (" 1 234,56 € ", "1234.56"),
        ("€1,234.56", "1234.56"),
        ("1234 EUR", "1234.00"),
        ("", "0.00"),
    ],
)
def test_amounts_in_german_and_english_notation(text: str, expected: str) -> None:
    assert parse_money(text).quantize(Decimal("0.01")) == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    ["abc", "1.234.56", "1,234,56.78", "12.3456", "1234,567", "-5", "1e3", "1,2,3", "12,", ",5"],
)
def test_ambiguous_or_broken_amounts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_money(text)


def test_deal_value_is_exact_to_the_cent() -> None:
    assert DealFields(title="x", value=Decimal("0.1")).value_cents == 10
    assert DealFields.model_validate({"title": "x", "value": "1.234,56"}).value_cents == 123456
    assert DealFields.model_validate({"title": "x", "value": 19.99}).value_cents == 1999
    big = DealFields.model_validate({"title": "x", "value": "999999999999.99"})
    assert big.value_cents == 99999999999999
    for bad in (Decimal("1.005"), Decimal("-1"), "1000000000000", True, Decimal("NaN")):
        with pytest.raises(ValidationError):
            DealFields.model_validate({"title": "x", "value": bad})


def test_formatting() -> None:
    assert format_money(123456789) == "1.234.567,89 €"
    assert format_money(5, "en") == "€0.05"
    assert format_money_input(123456) == "1234,56"
