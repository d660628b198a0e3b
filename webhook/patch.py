"""The one place JSON Patches (RFC 6902) are made: the object as received diffed against its mutated copy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Op = dict[str, Any]


def escape(key: str) -> str:
    """RFC 6901: '~' and '/' in a key ("app.kubernetes.io/name") must not be read as pointer syntax."""
    return key.replace("~", "~0").replace("/", "~1")


def pointer(*parts: str | int) -> str:
    return "".join(f"/{escape(str(p))}" for p in parts)


def diff(original: Any, mutated: Any) -> list[Op]:
    """Ops that turn `original` into `mutated`; [] when they are equal.

    Lists are diffed by position when only their items changed, by appends or prepends when that is
    all that happened (env injected before a container's own), and replaced whole otherwise: the
    apiserver applies any of these, and whole replacement never depends on indexes staying put.
    """
    ops: list[Op] = []
    _diff(original, mutated, "", ops)
    return ops


def _diff(a: Any, b: Any, path: str, ops: list[Op]) -> None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in b.items():
            child = f"{path}/{escape(key)}"
            if key not in a:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                _diff(a[key], value, child, ops)
        return
    if _is_list(a) and _is_list(b):
        _diff_list(a, b, path, ops)
        return
    if type(a) is not type(b) or a != b:
        ops.append({"op": "replace", "path": path, "value": b})


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _diff_list(a: Sequence[Any], b: Sequence[Any], path: str, ops: list[Op]) -> None:
    if len(a) == len(b):
        for index, (old, new) in enumerate(zip(a, b, strict=True)):
            _diff(old, new, f"{path}/{index}", ops)
        return
    grown = len(b) - len(a)
    if grown > 0 and list(b[: len(a)]) == list(a):
        ops.extend({"op": "add", "path": f"{path}/-", "value": item} for item in b[len(a) :])
    elif grown > 0 and list(b[grown:]) == list(a):
        ops.extend({"op": "add", "path": f"{path}/{index}", "value": b[index]} for index in range(grown))
    else:
        ops.append({"op": "replace", "path": path, "value": list(b)})
