"""Field paths of test expectations: `spec.containers[name=app].resources`, quoted keys, or JSON pointers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# One step after the first: `.key`, `[0]`, `["a.b/c"]` or `['x']`, `[name=app]`.
_STEP = re.compile(
    r"""\.(?P<key>[^.\[\]"']+)"""
    r"""|\[(?P<index>\d+)\]"""
    r"""|\[(?P<quote>["'])(?P<quoted>.*?)(?P=quote)\]"""
    r"""|\[(?P<field>[A-Za-z][\w-]*)=(?P<equals>[^\]]*)\]"""
)


class PathError(ValueError):
    """A field path that cannot be parsed."""


@dataclass(frozen=True)
class ItemWhere:
    """Selects the list item whose `field` equals `value`: containers[name=app], env[name=POD_IP]."""

    field: str
    value: str

    def __str__(self) -> str:
        return f"[{self.field}={self.value}]"


Step = str | int | ItemWhere


def parse_path(text: str) -> tuple[Step, ...]:
    if text.startswith("/"):
        # RFC 6901: "~1" is "/" and "~0" is "~", unescaped in that order.
        return tuple(_pointer_step(part) for part in text[1:].split("/"))
    head = re.match(r"[^.\[\]\"']+", text)
    if head is None:
        raise PathError(f"must start with a field name or '/' (got {text!r})")
    steps: list[Step] = [head.group()]
    position = head.end()
    while position < len(text):
        step = _STEP.match(text, position)
        if step is None:
            raise PathError(f"cannot read {text[position:]!r} in {text!r}")
        if step["key"] is not None:
            steps.append(step["key"])
        elif step["index"] is not None:
            steps.append(int(step["index"]))
        elif step["quote"] is not None:
            steps.append(step["quoted"])
        else:
            steps.append(ItemWhere(step["field"], step["equals"]))
        position = step.end()
    return tuple(steps)


def _pointer_step(part: str) -> str | int:
    key = part.replace("~1", "/").replace("~0", "~")
    return int(key) if key.isdigit() else key


_MISSING = object()


def lookup(document: Any, steps: Sequence[Step]) -> tuple[bool, Any]:
    """(True, value) when the field exists, else (False, None)."""
    node = document
    for step in steps:
        node = _step_into(node, step)
        if node is _MISSING:
            return False, None
    return True, node


def _step_into(node: Any, step: Step) -> Any:
    if isinstance(step, ItemWhere):
        if not isinstance(node, list):
            return _MISSING
        matches = [i for i in node if isinstance(i, Mapping) and str(i.get(step.field)) == step.value]
        return matches[0] if matches else _MISSING
    if isinstance(node, Mapping):
        return node.get(str(step), _MISSING)
    if isinstance(node, list) and isinstance(step, int):
        return node[step] if step < len(node) else _MISSING
    return _MISSING
