"""Require resource requests on every container, naming each container and what it lacks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Locator, format_path

KEY = "requireRequests"
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "resources": {
            "type": "array",
            "items": {"enum": ["cpu", "memory", "ephemeral-storage"]},
            "minItems": 1,
            "uniqueItems": True,
            "description": "resources every container must request (default cpu and memory)",
        },
        "initContainers": {"type": "boolean", "description": "judge init containers too (default true)"},
        "hint": {"type": "string", "description": "appended to the message: how to comply in this cluster"},
    },
}


@dataclass(frozen=True)
class Params:
    resources: tuple[str, ...] = ("cpu", "memory")
    init_containers: bool = True
    hint: str = ""


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    return Params(
        tuple(raw.get("resources", ("cpu", "memory"))),
        bool(raw.get("initContainers", True)),
        str(raw.get("hint", "")),
    )


def check(pod: PodView, params: Params, request: AdmissionRequest) -> list[str]:
    messages = []
    for container in pod.containers(init=params.init_containers):
        requests = (container.body.get("resources") or {}).get("requests") or {}
        missing = [name for name in params.resources if name not in requests]
        if not missing:
            continue
        where = format_path(container.path("resources", "requests"))
        noun = "request" if len(missing) == 1 else "requests"
        message = f"{container.label} is missing {' and '.join(missing)} {noun}; set {where}"
        messages.append(f"{message} ({params.hint})" if params.hint else message)
    return messages
