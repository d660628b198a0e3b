"""Require pod labels, and optionally restrict their values, naming every missing key in one message.

`patterns` are Python regular expressions matched against the *whole* value (re.fullmatch), as a
label value is a short token, not a text to search: `[0-9]+` refuses "v1". Patterns are compiled when
the policy loads; a value longer than a label value may be (63 characters) never reaches one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.names import NAME_MAX, label_value_problem, qualified_name_problem
from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Locator

KEY = "requireLabels"
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "keys": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "uniqueItems": True,
            "description": "label keys every pod must carry",
        },
        "allowedValues": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "uniqueItems": True,
            },
            "description": "label key -> the values it may take when present (list it in keys to require it)",
        },
        "patterns": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
            "description": "label key -> a regular expression (Python syntax) the whole value must match "
            "when present (list the key in keys to require it)",
        },
        "hint": {"type": "string", "description": "appended to the message: how to comply in this cluster"},
    },
}


@dataclass(frozen=True)
class Params:
    keys: tuple[str, ...] = ()
    allowed_values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hint: str = ""
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    keys = tuple(raw.get("keys", ()))
    for index, key in enumerate(keys):
        problem = qualified_name_problem(key)
        if problem:
            raise at.error(f"invalid label key: {problem}", "keys", index)
    allowed = []
    for key, values in (raw.get("allowedValues") or {}).items():
        problem = qualified_name_problem(key)
        if problem:
            raise at.error(f"invalid label key: {problem}", "allowedValues", key)
        for index, value in enumerate(values):
            problem = label_value_problem(value)
            if problem:
                raise at.error(f"invalid label value {value!r}: {problem}", "allowedValues", key, index)
        allowed.append((key, tuple(values)))
    patterns = []
    for key, text in (raw.get("patterns") or {}).items():
        problem = qualified_name_problem(key)
        if problem:
            raise at.error(f"invalid label key: {problem}", "patterns", key)
        try:
            patterns.append((key, re.compile(text)))
        except re.error as error:
            raise at.error(f"invalid regular expression {text!r}: {error}", "patterns", key) from None
        if nested_repetition(text):
            raise at.error(
                f"{text!r} repeats a group that itself repeats, which can take exponential time on a value a "
                "pod's author crafts: write it without the nesting (([a-z]+-)* as [a-z-]*)",
                "patterns",
                key,
            )
    return Params(keys, tuple(allowed), str(raw.get("hint", "")), tuple(patterns))


def check(pod: PodView, params: Params, request: AdmissionRequest) -> list[str]:
    # The engine prefixes a workload's messages with "<Kind> <name>: pod template ".
    subject = "" if pod.is_workload else "pod "
    labels = pod.labels
    messages = []
    missing = [key for key in params.keys if key not in labels]
    if missing:
        noun = "label" if len(missing) == 1 else "labels"
        messages.append(f"{subject}is missing {noun} {', '.join(missing)}")
    for key, values in params.allowed_values:
        if key in labels and labels[key] not in values:
            messages.append(f'{subject}label {key} is "{labels[key]}", not one of {", ".join(values)}')
    for key, pattern in params.patterns:
        if key in labels and not _full_match(pattern, labels[key]):
            messages.append(f'{subject}label {key} is "{labels[key]}", not a full match of {pattern.pattern}')
    if params.hint:
        messages = [f"{message} ({params.hint})" for message in messages]
    return messages


def _full_match(pattern: re.Pattern[str], value: Any) -> bool:
    # Longer values are no label values (the apiserver refuses them); never feed them to a pattern.
    return isinstance(value, str) and len(value) <= NAME_MAX and pattern.fullmatch(value) is not None


def nested_repetition(pattern: str) -> bool:
    """Whether a repetition repeats something that repeats itself ((a+)+, (a*b?)*): backtracking blows up.

    A heuristic on Python's own parse of the pattern; overlapping alternatives ((a|a)*) go unseen.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
        return _repeats_within(parser, parser.parse(pattern), inside=False)
    except Exception:  # the parser is private: when it changes, the check stands down
        return False


def _repeats_within(parser: Any, items: Any, *, inside: bool) -> bool:
    repeats = (parser.MAX_REPEAT, parser.MIN_REPEAT, getattr(parser, "POSSESSIVE_REPEAT", None))
    for op, arg in items:
        if op in repeats:
            least, most, body = arg
            varies = most > 1 and least != most  # a{3} matches one way; a+ and a{1,3} many ways
            if (varies and inside) or _repeats_within(parser, body, inside=inside or varies):
                return True
            continue
        bodies = [arg[-1]] if op is parser.SUBPATTERN else arg[1] if op is parser.BRANCH else []
        if any(_repeats_within(parser, body, inside=inside) for body in bodies):
            return True
    return False
