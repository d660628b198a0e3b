"""What requireRequests and requireLimits share: every container must set a resource field, or the pod
must budget that resource as a whole (spec.resources, Kubernetes 1.34+ pod-level resources)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.pods import POD_LEVEL_RESOURCES, PodView, pod_level_resources
from webhook.rules import format_path

RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


def schema(verb: str, default: str) -> Mapping[str, Any]:
    """The parameters of a rule requiring `verb` ("request", "limit") of each named resource."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "resources": {
                "type": "array",
                "items": {"enum": list(RESOURCE_NAMES)},
                "minItems": 1,
                "uniqueItems": True,
                "description": f"resources every container must {verb} (default {default})",
            },
            "initContainers": {"type": "boolean", "description": "judge init containers too (default true)"},
            "hint": {
                "type": "string",
                "description": "appended to the message: how to comply in this cluster",
            },
        },
    }


@dataclass(frozen=True)
class Params:
    resources: tuple[str, ...]
    init_containers: bool = True
    hint: str = ""


def parse(raw: Mapping[str, Any], default: tuple[str, ...]) -> Params:
    return Params(
        tuple(raw.get("resources", default)),
        bool(raw.get("initContainers", True)),
        str(raw.get("hint", "")),
    )


def missing(
    pod: PodView, params: Params, field: str, *, budgeted_by: tuple[str, ...], name_pod_level: bool
) -> list[str]:
    """One message per container that lacks `field` ("requests", "limits") for a required resource.

    A resource named in one of the pod-level `budgeted_by` fields satisfies every container; with
    `name_pod_level`, a message whose resources the pod could budget says so.
    """
    budgeted = pod_level_resources(_mapping(pod.template.get("spec")), budgeted_by)
    wanted = [name for name in params.resources if name not in budgeted]
    if not wanted:
        return []
    noun = field.removesuffix("s")
    messages = []
    for container in pod.containers(init=params.init_containers):
        values = _mapping(_mapping(container.body.get("resources")).get(field))
        lacking = [name for name in wanted if name not in values]
        if not lacking:
            continue
        where = format_path(container.path("resources", field))
        what = noun if len(lacking) == 1 else field
        message = f"{container.label} is missing {' and '.join(lacking)} {what}; set {where}"
        if name_pod_level and all(name in POD_LEVEL_RESOURCES for name in lacking):
            message += f" (or {format_path(pod.pointer('spec', 'resources', field))} for the whole pod)"
        messages.append(f"{message} ({params.hint})" if params.hint else message)
    return messages


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
