from fractions import Fraction

import pytest

from webhook.kube.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Fraction(1, 10)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("1", Fraction(1)),
        ("1000m", Fraction(1)),
        ("256Mi", Fraction(256 * 2**20)),
        ("256M", Fraction(256 * 10**6)),
        ("1Gi", Fraction(2**30)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("1.5e-3", Fraction(3, 2000)),
        ("250u", Fraction(250, 10**6)),
        ("2k", Fraction(2000)),
        ("+1", Fraction(1)),
        (1, Fraction(1)),
        (0.25, Fraction(1, 4)),
    ],
    ids=str,
)
def test_parses_like_the_apiserver(text: object, value: Fraction) -> None:
    assert parse_quantity(text).value == value


def test_keeps_the_text_it_was_written_with() -> None:
    assert parse_quantity("0.5").text == "0.5"
    assert parse_quantity(1).text == "1"


def test_compares_across_notations() -> None:
    assert parse_quantity("1000m") == parse_quantity("1000m")
    assert parse_quantity("1000m").value == parse_quantity("1").value
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("100m") < parse_quantity("0.2")
    assert parse_quantity("256Mi") <= parse_quantity("268435456")


@pytest.mark.parametrize(
    "text", ["", "abc", "1.2.3", "10Mib", "1 Gi", "-1", "1e", "Mi", True, None, [1]], ids=repr
)
def test_rejects_what_the_apiserver_rejects(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize("text", ["9" * 65, "9" * 5000, "1e65", "1e99999999", "1e-99999999"])
def test_numbers_no_resource_can_have_are_refused_before_any_arithmetic(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_the_largest_accepted_forms_still_parse() -> None:
    assert parse_quantity("9" * 64).value == int("9" * 64)
    assert parse_quantity("1e64").value == 10**64
