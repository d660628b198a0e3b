"""Environment variables holding the container's own image and name, which the downward API cannot give.

The value is written literally (`value: nginx:1.27`): Kubernetes has no fieldRef for a container's
fields. A variable the container already defines is never overridden. When its value differs from
what this rule would set, the request gets a warning: the variable may be stale (a workload template
that stored the variable with mutateTemplates, then had its image changed) or the container's author
may mean something else by it. A name that an `envFrom` with a matching `prefix` could define is
left alone, as downwardEnv does.

Injected variables go first in `env`, so that `$(CONTAINER_IMAGE)` in the user's own variables expands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.names import env_var_name_problem
from webhook.kube.pods import Container, PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Locator, Warned

KEY = "containerEnv"
SETS_LABELS = False
FIELDS = ("image", "name")

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["env"],
    "properties": {
        "env": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"enum": list(FIELDS)},
            "description": "variable name -> the container field it holds: image (as written in the pod) "
            "or name; injected in this order, before the container's own",
        },
        "initContainers": {
            "type": "boolean",
            "description": "inject into init containers (native sidecars included) too (default false)",
        },
    },
}


@dataclass(frozen=True)
class Params:
    variables: tuple[tuple[str, str], ...]  # (name, container field), in policy order
    init_containers: bool = False


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    for name in raw["env"]:
        problem = env_var_name_problem(str(name))
        if problem:
            raise at.error(problem, "env", name)
    variables = tuple((str(name), str(field)) for name, field in raw["env"].items())
    return Params(variables, bool(raw.get("initContainers", False)))


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    effects: list[Effect] = []
    for container in pod.containers(init=params.init_containers):
        effects.extend(_inject(container, params.variables))
    return effects


def _inject(container: Container, variables: tuple[tuple[str, str], ...]) -> list[Effect]:
    env = container.body.get("env")
    own = env if isinstance(env, list) else []
    defined = {str(e.get("name")): e for e in own if isinstance(e, Mapping)}
    prefixes = [
        str(source["prefix"])
        for source in container.body.get("envFrom") or []
        if isinstance(source, Mapping) and source.get("prefix")
    ]
    effects: list[Effect] = []
    missing: list[tuple[str, str, str]] = []
    for name, field in variables:
        value = _value(container, field)
        if value is None or any(name.startswith(prefix) for prefix in prefixes):
            continue
        if name not in defined:
            missing.append((name, field, value))
        elif defined[name].get("value") != value or "valueFrom" in defined[name]:
            effects.append(
                Warned(
                    f"{container.label}: env {name} kept as the container sets it, not set to its {field} "
                    f"{value}; rename or drop the container's own {name} to get it"
                )
            )
    if not missing:
        return effects
    container.body["env"] = [{"name": name, "value": value} for name, _, value in missing] + own
    at = container.path("env")
    changes: list[Effect] = [
        Changed((*at, index), f"{container.label}: env {name} set to its {field} {value}")
        for index, (name, field, value) in enumerate(missing)
    ]
    return changes + effects


def _value(container: Container, field: str) -> str | None:
    """The container's image or name, or None when it has none (the apiserver refuses such a pod)."""
    value = container.body.get(field)
    return value if isinstance(value, str) and value else None
