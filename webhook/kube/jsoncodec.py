"""JSON in and out of podgate's hot path, through orjson: it parses and writes AdmissionReviews several
times faster than the standard library (benchmarks/BENCHMARKS.md), and its limits suit untrusted input.

orjson refuses what the apiserver never sends: invalid UTF-8, lone surrogates, NaN, and nesting deeper
than 1,024 levels when parsing (254 when writing). Integers wider than 64 bits parse as floats and
cannot be written back; Kubernetes has no such fields.
"""

from __future__ import annotations

from typing import Any

import orjson

# The deepest object podgate copies or writes: orjson's own writing limit.
MAX_DEPTH = 254
DecodeError = orjson.JSONDecodeError


class EncodeError(ValueError):
    """A value JSON cannot carry here: nested over MAX_DEPTH, an integer over 64 bits, a non-JSON type."""


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        raise EncodeError(str(error)) from None


def copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data; a JSON round trip in C beats copy.deepcopy many times over."""
    return orjson.loads(dumps(value))
