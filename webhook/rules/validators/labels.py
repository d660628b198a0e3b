"""Require pod labels, and optionally restrict their values, naming every missing key in one message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.names import label_value_problem, qualified_name_problem
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
        "hint": {"type": "string", "description": "appended to the message: how to comply in this cluster"},
    },
}


@dataclass(frozen=True)
class Params:
    keys: tuple[str, ...] = ()
    allowed_values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hint: str = ""


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
    return Params(keys, tuple(allowed), str(raw.get("hint", "")))


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
    if params.hint:
        messages = [f"{message} ({params.hint})" for message in messages]
    return messages
