"""Environment variables through which a container sees its pod (downward API) and its own resources.

A variable the container may already define is never overridden: one it names in `env`, or one an
`envFrom` source with a matching `prefix` could bring. An `envFrom` without a prefix could define any name,
but only by reading the ConfigMap or Secret could podgate know which; the variables are injected anyway,
since skipping them would drop them from every container that loads a ConfigMap whole. The cost: a key
of that ConfigMap with the same name is shadowed, because Kubernetes lets `env` win over `envFrom`.

Injected variables go first in `env`, so that `$(MY_POD_NAME)` in the user's own variables expands.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.names import env_var_name_problem, qualified_name_problem
from webhook.kube.pods import Container, PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Locator

KEY = "downwardEnv"
SETS_LABELS = False

# The pod fields Kubernetes lets an env var's fieldRef select.
FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_SUBSCRIPTED_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")
RESOURCES = tuple(
    f"{kind}.{name}" for kind in ("limits", "requests") for name in ("cpu", "memory", "ephemeral-storage")
)
# The divisors Kubernetes accepts, in the canonical form it stores them in: any other spelling of the
# same quantity ("1024Ki") would come back rewritten and make a second evaluation differ.
CPU_DIVISORS = ("1m", "1")
BYTE_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["env"],
    "properties": {
        "env": {
            "type": "array",
            "minItems": 1,
            "description": "variables to inject, in this order, before the container's own",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "description": "the variable's name"},
                    "fieldPath": {
                        "type": "string",
                        "description": "pod field: metadata.name, spec.nodeName, status.podIP, "
                        "metadata.labels['key'], ...",
                    },
                    "resource": {
                        "enum": list(RESOURCES),
                        "description": "the container's own limit or request (an unset limit reads as the "
                        "node's allocatable)",
                    },
                    "divisor": {
                        "type": ["string", "integer"],
                        "description": "unit of a resource value, rounded up: 1m or 1 for cpu, 1, 1Ki, 1Mi, "
                        "1Gi, 1k, 1M, 1G, ... for memory and ephemeral-storage (default 1)",
                    },
                },
            },
        },
        "initContainers": {
            "type": "boolean",
            "description": "inject into init containers too (default false)",
        },
    },
}


@dataclass(frozen=True)
class Variable:
    name: str
    field_path: str = ""  # exactly one of field_path and resource is set
    resource: str = ""
    divisor: str = "1"

    def entry(self, container: Container) -> dict[str, Any]:
        # Written as the apiserver stores them: fieldRef gains apiVersion v1, and an omitted divisor
        # would be stored as "0".
        if self.field_path:
            reference = {"apiVersion": "v1", "fieldPath": self.field_path}
            return {"name": self.name, "valueFrom": {"fieldRef": reference}}
        reference = {"containerName": container.name, "resource": self.resource, "divisor": self.divisor}
        return {"name": self.name, "valueFrom": {"resourceFieldRef": reference}}

    @functools.cached_property
    def source(self) -> str:
        return self.field_path or f"{self.resource} (divisor {self.divisor})"


@dataclass(frozen=True)
class Params:
    variables: tuple[Variable, ...]
    init_containers: bool = False


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    variables: list[Variable] = []
    for index, item in enumerate(raw["env"]):
        variables.append(_parse_variable(item, at.child("env", index)))
        names = [v.name for v in variables]
        if names.count(names[-1]) > 1:
            raise at.error(f"duplicate variable {names[-1]!r}", "env", index, "name")
    return Params(tuple(variables), bool(raw.get("initContainers", False)))


def _parse_variable(item: Mapping[str, Any], at: Locator) -> Variable:
    name = str(item["name"])
    problem = env_var_name_problem(name)
    if problem:
        raise at.error(problem, "name")
    if ("fieldPath" in item) == ("resource" in item):
        raise at.error("must have exactly one of fieldPath and resource")
    if "fieldPath" in item:
        if "divisor" in item:
            raise at.error("only a resource takes a divisor", "divisor")
        field_path = str(item["fieldPath"])
        problem = field_path_problem(field_path)
        if problem:
            raise at.error(problem, "fieldPath")
        return Variable(name, field_path=field_path)
    resource = str(item["resource"])
    divisor = str(item.get("divisor", "1"))
    allowed = CPU_DIVISORS if resource.endswith(".cpu") else BYTE_DIVISORS
    if divisor not in allowed:
        raise at.error(f"must be one of {', '.join(allowed)} for {resource} (got {divisor!r})", "divisor")
    return Variable(name, resource=resource, divisor=divisor)


def field_path_problem(path: str) -> str:
    """Why Kubernetes would reject `path` as an env var's fieldRef, or "" when it accepts it."""
    subscripted = _SUBSCRIPTED_PATH.match(path)
    if subscripted:
        problem = qualified_name_problem(subscripted.group(2))
        return f"{subscripted.group(1)} key {problem}" if problem else ""
    if path in FIELD_PATHS:
        return ""
    allowed = ", ".join([*FIELD_PATHS, "metadata.labels['<key>']", "metadata.annotations['<key>']"])
    return f"must be one of {allowed} (got {path!r})"


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    effects: list[Effect] = []
    for container in pod.containers(init=params.init_containers):
        effects.extend(_inject(container, params.variables))
    return effects


def _inject(container: Container, variables: tuple[Variable, ...]) -> list[Effect]:
    env = container.body.get("env")
    own = env if isinstance(env, list) else []
    defined = {str(e.get("name")) for e in own if isinstance(e, Mapping)}
    prefixes = [
        str(source["prefix"])
        for source in container.body.get("envFrom") or []
        if isinstance(source, Mapping) and source.get("prefix")
    ]
    missing = [
        v for v in variables if v.name not in defined and not any(v.name.startswith(p) for p in prefixes)
    ]
    if not missing:
        return []
    container.body["env"] = [v.entry(container) for v in missing] + own
    label, at = container.label, container.path("env")
    return [
        Changed((*at, index), f"{label}: env {v.name} set from {v.source}") for index, v in enumerate(missing)
    ]
