"""The one place JSON Patches (RFC 6902) are made: the object as received diffed against its mutated copy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Op = dict[str, Any]
_SCALARS = frozenset({str, int, float, bool, type(None)})


def escape(key: str) -> str:
    """RFC 6901: '~' and '/' in a key ("app.kubernetes.io/name") must not be read as pointer syntax."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def pointer(*parts: str | int) -> str:
    return "/" + "/".join([escape(p) if isinstance(p, str) else str(p) for p in parts]) if parts else ""


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
    if a is b:
        return
    if type(a) in _SCALARS or type(b) in _SCALARS:
        if type(a) is not type(b) or a != b:
            ops.append({"op": "replace", "path": path, "value": b})
        return
    if (type(a) is dict and type(b) is dict) or (isinstance(a, Mapping) and isinstance(b, Mapping)):
        # Most of an admitted object is untouched: comparing a subtree in C is far cheaper than walking
        # it. (== would call True and 1 equal; no mutator ever writes a bool where a number was.)
        if a == b:
            return
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in b.items():
            if key not in a:
                ops.append({"op": "add", "path": f"{path}/{escape(key)}", "value": value})
                continue
            old = a[key]
            if old is value or (type(old) is type(value) and old == value):
                continue
            _diff(old, value, f"{path}/{escape(key)}", ops)
        return
    if _is_list(a) and _is_list(b):
        if a != b:
            _diff_list(a, b, path, ops)
        return
    if type(a) is not type(b) or a != b:
        ops.append({"op": "replace", "path": path, "value": b})


def _is_list(value: Any) -> bool:
    # JSON arrays arrive as lists; the abc check is only for other sequences (and costs far more).
    return type(value) is list or (isinstance(value, Sequence) and not isinstance(value, (str, bytes)))


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
