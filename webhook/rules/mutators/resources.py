"""Default resource requests and limits per container, never leaving a request above its limit.

A resource the pod budgets at pod level (spec.resources, Kubernetes 1.34+) gets no container default:
the apiserver requires the containers' requests to sum to at most the pod's request and each container's
limit to stay within the pod's limit, and the pod-level values already give the scheduler its request
and the kubelet its cgroup bound. Any share of the pod's budget podgate picked for a container would be
arbitrary, and could only narrow what the pod's author chose.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.pods import Container, PodView, pod_level_resources
from webhook.kube.quantity import Quantity, QuantityError, parse_quantity
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Locator, Warned
from webhook.rules.limitranges import within_limit_ranges

KEY = "resources"
SETS_LABELS = False
RAISE_LIMIT = "raiseLimit"
OMIT_LIMIT = "omitLimit"
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")

_QUANTITY_SCHEMA = {
    "type": ["string", "number"],
    "description": "a Kubernetes quantity: 100m, 0.5, 256Mi, 1Gi",
}
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["defaults"],
    "properties": {
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                name: {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {"request": _QUANTITY_SCHEMA, "limit": _QUANTITY_SCHEMA},
                }
                for name in RESOURCE_NAMES
            },
        },
        "initContainers": {"type": "boolean", "description": "default init containers too (default true)"},
        "whenRequestExceedsLimit": {
            "enum": [RAISE_LIMIT, OMIT_LIMIT],
            "description": "a user's request above the default limit: raise the limit to it, or set no limit",
        },
    },
}


@dataclass(frozen=True)
class Default:
    resource: str
    request: Quantity | None
    limit: Quantity | None


@dataclass(frozen=True)
class Params:
    defaults: tuple[Default, ...]
    init_containers: bool = True
    when_request_exceeds_limit: str = RAISE_LIMIT


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    defaults = []
    for resource, values in raw["defaults"].items():
        parsed: dict[str, Quantity | None] = {}
        for field in ("request", "limit"):
            try:
                parsed[field] = parse_quantity(values[field]) if field in values else None
            except QuantityError as error:
                raise at.error(str(error), "defaults", resource, field) from None
        request, limit = parsed["request"], parsed["limit"]
        if request is not None and limit is not None and request > limit:
            raise at.error(f"request {request} exceeds limit {limit}", "defaults", resource)
        defaults.append(Default(resource, request, limit))
    return Params(
        tuple(defaults),
        bool(raw.get("initContainers", True)),
        str(raw.get("whenRequestExceedsLimit", RAISE_LIMIT)),
    )


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    effects: list[Effect] = []
    pod_level = pod_level_resources(pod.template.get("spec") or {})
    defaults = [default for default in params.defaults if default.resource not in pod_level]
    for container in pod.containers(init=params.init_containers):
        for default in defaults:
            found = _default_one(container, default, params)
            # Never a value the namespace's LimitRange would refuse after podgate set it.
            effects.extend(within_limit_ranges(container, default.resource, found, pod.limit_ranges))
    return effects


def _default_one(container: Container, default: Default, params: Params) -> list[Effect]:
    resources: MutableMapping[str, Any] = container.body.setdefault("resources", {})
    name = default.resource
    try:
        request = _quantity(resources.get("requests"), name)
        limit = _quantity(resources.get("limits"), name)
    except QuantityError as error:
        # The apiserver rejects such a pod anyway; defaulting around a broken value would hide it.
        return [Warned(f"{container.label}: {name} left alone, {error}")]
    effects: list[Effect] = []
    if limit is None and default.limit is not None:
        if request is not None and request > default.limit:
            if params.when_request_exceeds_limit == RAISE_LIMIT:
                limit = request
                effects.append(_set(container, "limits", name, request))
                effects.append(
                    Warned(
                        f"{container.label}: {name} request {request} exceeds the default limit "
                        f"{default.limit}; limit raised to {request}"
                    )
                )
            else:
                effects.append(
                    Warned(
                        f"{container.label}: {name} request {request} exceeds the default limit "
                        f"{default.limit}; no limit set"
                    )
                )
        else:
            limit = default.limit
            effects.append(_set(container, "limits", name, default.limit))
    if request is None and default.request is not None:
        # Never request more than the limit: the apiserver would reject the pod.
        value = limit if limit is not None and default.request > limit else default.request
        effects.append(_set(container, "requests", name, value))
    return effects


def _quantity(values: Any, name: str) -> Quantity | None:
    if not isinstance(values, Mapping) or name not in values:
        return None
    return parse_quantity(values[name])


def _set(container: Container, field: str, name: str, value: Quantity) -> Changed:
    container.body["resources"].setdefault(field, {})[name] = value.text
    singular = field[:-1]
    return Changed(
        container.path("resources", field, name), f"{container.label}: {name} {singular} set to {value}"
    )
