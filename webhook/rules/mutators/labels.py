"""Default pod labels, literal or derived from the workload's name, never overwriting a label already set."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.names import NAME_MAX, label_value_problem, qualified_name_problem
from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Locator, Warned

KEY = "labels"
SETS_LABELS = True

# Kubernetes' own limits (apimachinery validation: IsQualifiedName, IsValidLabelValue).
_NOT_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# The CronJob controller names each Job <cronjob>-<minutes since the epoch> (8 digits for decades).
_CRONJOB_SUFFIX = re.compile(r"-[0-9]{8,}$")

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["defaults"],
    "properties": {
        "defaults": {
            "type": "object",
            "minProperties": 1,
            "description": "label key -> a literal value, or {fromName: true} to derive it from the "
            "workload's name; a label the pod already has is never changed",
            "additionalProperties": {
                "type": ["string", "object"],
                "additionalProperties": False,
                "required": ["fromName"],
                "properties": {
                    "fromName": {
                        "const": True,
                        "description": "label app, else the owning workload's name, else generateName, "
                        "else the pod's name",
                    }
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Default:
    key: str
    value: str  # the literal; unused when derived
    from_name: bool = False


@dataclass(frozen=True)
class Params:
    defaults: tuple[Default, ...]


def sanitise_value(text: str) -> str:
    """The closest valid label value: other characters become '-', cut to 63, trimmed to alphanumerics."""
    value = _NOT_LABEL_CHARS.sub("-", text)[:NAME_MAX]
    return value.strip("-_.")


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    defaults = []
    for key, value in raw["defaults"].items():
        problem = qualified_name_problem(key)
        if problem:
            raise at.error(f"invalid label key: {problem}", "defaults", key)
        if isinstance(value, str):
            problem = label_value_problem(value)
            if problem:
                raise at.error(f"invalid label value {value!r}: {problem}", "defaults", key)
            defaults.append(Default(key, value))
        else:
            defaults.append(Default(key, "", from_name=True))
    return Params(tuple(defaults))


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    labels = pod.metadata.get("labels")
    if not isinstance(labels, MutableMapping):
        labels = {}
    effects: list[Effect] = []
    for default in params.defaults:
        if default.key in labels:
            continue
        if not default.from_name:
            value, origin = default.value, ""
        else:
            source, origin = derive_name(pod, request)
            value = sanitise_value(source)
            if not value:
                effects.append(Warned(f"label {default.key} not set: no valid label value in {origin}"))
                continue
            if value != source:
                origin += f", shortened from {source!r}"
            origin = f" (from {origin})"
        if not pod.metadata.get("labels"):
            pod.metadata["labels"] = labels
        labels[default.key] = value
        path = pod.pointer("metadata", "labels", default.key)
        effects.append(Changed(path, f'label {default.key} set to "{value}"{origin}'))
    return effects


def derive_name(pod: PodView, request: AdmissionRequest) -> tuple[str, str]:
    """The application name a pod will be known by, and where it came from (for --explain).

    Pods made by a controller carry the controller's name plus hashes that change on every rollout
    (ReplicaSet pod-template-hash, CronJob schedule time); the derived name drops them, so every pod
    of an application gets the same value.
    """
    metadata: Mapping[str, Any] = pod.template.get("metadata") or {}
    labels: Mapping[str, Any] = metadata.get("labels") or {}
    if isinstance(labels.get("app"), str) and labels["app"]:
        return labels["app"], "label app"
    template_hash = str(labels.get("pod-template-hash", ""))
    if pod.is_workload:
        # Judging a workload's future pod: its controller is the workload itself.
        return _strip_hashes(request.name, request.kind, template_hash), f"{request.kind} {request.name}"
    for owner in metadata.get("ownerReferences") or ():
        if isinstance(owner, Mapping) and owner.get("controller") and owner.get("name"):
            kind, name = str(owner.get("kind", "")), str(owner["name"])
            return _strip_hashes(name, kind, template_hash), f"owner {kind} {name}"
    generate_name = str(metadata.get("generateName") or "")
    if generate_name:
        return _strip_hashes(generate_name.rstrip("-"), "", template_hash), f"generateName {generate_name}"
    name = str(metadata.get("name") or request.name)
    return name, f"name {name}"


def _strip_hashes(name: str, kind: str, template_hash: str) -> str:
    if template_hash and name.endswith(f"-{template_hash}"):
        return name[: -len(template_hash) - 1]
    if kind == "Job":
        return _CRONJOB_SUFFIX.sub("", name)
    return name
