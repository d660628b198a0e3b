"""Kubernetes resource quantities ("100m", "256Mi", "1e3"), parsed exactly, compared as the apiserver does."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
# The grammar of k8s.io/apimachinery resource.Quantity: a signed decimal number ("1", "1.5", ".5", "5.")
# followed by a binary suffix, a decimal suffix, or a decimal exponent.
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exponent>[eE][+-]?\d+)|(?P<decimal>[numkMGTPE]?))$"
)


# Far past any real resource (the apiserver caps quantities at 2^63-1 of their unit) and far short of
# what makes exact arithmetic slow.
MAX_DIGITS = 64
MAX_EXPONENT = 64


class QuantityError(ValueError):
    """A string that the apiserver would reject as a resource quantity."""


@dataclass(frozen=True, order=False)
class Quantity:
    """A quantity keeps the text it was written with: podgate never rewrites a user's "0.5" as "500m"."""

    text: str
    value: Fraction

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def __str__(self) -> str:
        return self.text


def parse_quantity(raw: object) -> Quantity:
    """Parse a quantity as the apiserver accepts it; YAML numbers (1, 0.5) are accepted like their text."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise QuantityError(f"must be a quantity such as 100m or 256Mi (got {_shown(raw)})")
    if type(raw) is str and len(raw) <= _CACHED_TEXT:
        return _parse_text(raw)
    return _parse(raw)


# A cluster writes a few dozen distinct quantities ("100m", "256Mi") over and over; parsing is exact
# (Fractions), so remembering the parsed ones is most of the resources mutator's speed.
_CACHED_TEXT = 32


@functools.lru_cache(maxsize=4096)
def _parse_text(raw: str) -> Quantity:
    return _parse(raw)


def _parse(raw: str | int | float) -> Quantity:
    text = raw.strip() if isinstance(raw, str) else repr(raw)
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"must be a quantity such as 100m or 256Mi (got {_shown(raw)})")
    # Exact arithmetic on "1e99999999" or a 5,000-digit number would hold a worker for seconds, for a
    # value no resource can have: refuse them before computing anything.
    if len(match["number"]) > MAX_DIGITS:
        raise QuantityError(f"has more than {MAX_DIGITS} digits (got {_shown(raw)})")
    exponent = int(match["exponent"][1:]) if match["exponent"] else 0
    if abs(exponent) > MAX_EXPONENT:
        raise QuantityError(f"has an exponent beyond ±{MAX_EXPONENT} (got {_shown(raw)})")
    number = Fraction(match["number"])
    if match["binary"]:
        value = number * _BINARY[match["binary"]]
    elif match["exponent"]:
        value = number * Fraction(10) ** exponent
    else:
        value = number * _DECIMAL[match["decimal"] or ""]
    if value < 0:
        raise QuantityError(f"must not be negative (got {raw!r})")
    return Quantity(text, value)


def _shown(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."
