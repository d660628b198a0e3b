"""Require liveness, readiness or startup probes on every long-running container, naming what is missing.

Kubernetes forbids probes on init containers, except native sidecars (restartPolicy: Always), which
may have all three; plain init containers are never judged, sidecars only with `nativeSidecars`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.pods import Container, PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Locator, format_path

KEY = "requireProbes"
# Policy name -> container field, in the order messages name them (as in the probes mutator).
KINDS = {"readiness": "readinessProbe", "liveness": "livenessProbe", "startup": "startupProbe"}
# A probe has exactly one of these (Kubernetes validation).
HANDLERS = ("httpGet", "tcpSocket", "grpc", "exec")
_KINDS_SCHEMA = {"type": "array", "items": {"enum": list(KINDS)}, "minItems": 1, "uniqueItems": True}
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "allOf": {**_KINDS_SCHEMA, "description": "probes every container must have, all of them"},
        "anyOf": {**_KINDS_SCHEMA, "description": "probes of which every container must have at least one"},
        "handlers": {
            "type": "array",
            "items": {"enum": list(HANDLERS)},
            "minItems": 1,
            "uniqueItems": True,
            "description": "handlers that make a probe count (default all: httpGet, tcpSocket, grpc, exec)",
        },
        "nativeSidecars": {
            "type": "boolean",
            "description": "judge init containers with restartPolicy Always too (default false, like the "
            "probes mutator)",
        },
        "hint": {"type": "string", "description": "appended to the message: how to comply in this cluster"},
    },
}


@dataclass(frozen=True)
class Params:
    kinds: tuple[str, ...]  # policy names (readiness, liveness, startup), in KINDS order
    every: bool  # allOf (True) or anyOf (False)
    handlers: tuple[str, ...] = HANDLERS
    native_sidecars: bool = False
    hint: str = ""


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    given = [key for key in ("allOf", "anyOf") if key in raw]
    if len(given) != 1:
        found = "got both" if given else "got neither"
        raise at.error(
            f"must have exactly one of allOf (every probe listed) and anyOf (at least one); {found}"
        )
    listed = raw[given[0]]
    handlers = raw.get("handlers", HANDLERS)
    return Params(
        tuple(kind for kind in KINDS if kind in listed),
        given[0] == "allOf",
        tuple(handler for handler in HANDLERS if handler in handlers),
        bool(raw.get("nativeSidecars", False)),
        str(raw.get("hint", "")),
    )


def check(pod: PodView, params: Params, request: AdmissionRequest) -> list[str]:
    messages = []
    for container in pod.containers(init=params.native_sidecars):
        if container.is_init and not container.is_sidecar:
            continue
        message = _judge(container, params)
        if message:
            messages.append(f"{message} ({params.hint})" if params.hint else message)
    return messages


def _judge(container: Container, params: Params) -> str:
    fields = [KINDS[kind] for kind in params.kinds]
    counted = [field for field in fields if _handler(container.body.get(field)) in params.handlers]
    if (len(counted) == len(fields)) if params.every else counted:
        return ""
    # A probe whose handler does not count is named, so its author learns why it was not enough.
    ignored = [
        f"its {field} uses {handler}"
        for field in fields
        if field not in counted and (handler := _handler(container.body.get(field)))
    ]
    where = format_path(container.path())
    if params.every:
        missing = [kind for kind, field in zip(params.kinds, fields, strict=True) if field not in counted]
        names = [KINDS[kind] for kind in missing]
        noun = "probe" if len(missing) == 1 else "probes"
        message = f"{container.label} is missing {_and(missing)} {noun}; set {_and(names)} in {where}"
    else:
        message = f"{container.label} has no {_or(list(params.kinds))} probe; set {_or(fields)} in {where}"
    if ignored:
        allowed = _or(list(params.handlers))
        message += f" (only a probe using {allowed} counts: {', '.join(ignored)})"
    return message


def _handler(probe: Any) -> str:
    """The probe's handler, or "" when there is no probe (or no handler the apiserver would accept)."""
    if not isinstance(probe, Mapping):
        return ""
    return next((handler for handler in HANDLERS if handler in probe), "")


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
