"""PodPreset-style presets: inject env, envFrom, volumes and mounts into matching pods, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from webhook.kube import jsoncodec
from webhook.kube.pods import Container, PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Warned
from webhook.rules.mutators.preset_spec import (
    DOCUMENT_KIND,
    DOCUMENT_SCHEMA,
    KEY,
    OPT_OUT_ANNOTATION,
    SCHEMA,
    SETS_LABELS,
    Item,
    Params,
    parse,
    parse_document,
)

__all__ = [
    "DOCUMENT_KIND",
    "DOCUMENT_SCHEMA",
    "KEY",
    "OPT_OUT_ANNOTATION",
    "SCHEMA",
    "SETS_LABELS",
    "Params",
    "mutate",
    "parse",
    "parse_document",
]

# The apiserver fills these in before any webhook sees a pod (defaultMode 420 on configMap volumes,
# apiVersion v1 on fieldRefs, ...): an item differing only by them is the same item.
_DEFAULTS = (("defaultMode", 420), ("apiVersion", "v1"), ("divisor", "0"), ("divisor", 0))
_FALSE_BY_DEFAULT = ("readOnly", "optional")


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    annotations: Mapping[str, Any] = pod.metadata.get("annotations") or {}
    # Already applied (a reinvocation, or a pod re-created from a stored copy). Opting out by the
    # exclude annotation is decided by the policy's allowOptOut (webhook/policy/optout.py), not here.
    if annotations.get(params.annotation) == params.version:
        return []
    containers = list(pod.containers(init=params.init_containers))
    conflicts = _volume_conflicts(pod, params)
    for container in containers:
        conflicts.extend(_container_conflicts(container, params))
    if conflicts:
        # All or nothing, as PodPreset did: half a preset (a mount without its env) is worse than none.
        why = "; ".join(conflicts)
        return [Warned(f"preset {params.preset} not applied, the pod is admitted without it: {why}")]
    # Volumes belong to the pod, once; mounts and env to each container.
    effects: list[Effect] = []
    for volume in params.volumes:
        if not _find(pod.spec.get("volumes") or [], "name", volume["name"]):
            index = _append(pod.spec, "volumes", volume)
            effects.append(Changed(pod.pointer("spec", "volumes", index), f"volume {volume['name']} added"))
    for container in containers:
        effects.extend(_inject(container, "env", params.env))
        effects.extend(_inject(container, "envFrom", params.env_from))
        effects.extend(_inject(container, "volumeMounts", params.volume_mounts))
    if not isinstance(pod.metadata.get("annotations"), MutableMapping):
        pod.metadata["annotations"] = {}
    pod.metadata["annotations"][params.annotation] = params.version
    path = pod.pointer("metadata", "annotations", params.annotation)
    effects.append(Changed(path, f"preset {params.preset} version {params.version} applied"))
    return effects


def _volume_conflicts(pod: PodView, params: Params) -> list[str]:
    volumes = pod.spec.get("volumes") or []
    conflicts = []
    for volume in params.volumes:
        for existing in _find(volumes, "name", volume["name"]):
            if not _same(existing, volume):
                ours, theirs = _source(volume), _source(existing)
                how = f"{ours} in the preset, {theirs} in the pod" if ours != theirs else f"different {ours}"
                conflicts.append(f"volume {volume['name']} has a different source ({how})")
                break
    return conflicts


def _container_conflicts(container: Container, params: Params) -> list[str]:
    conflicts = []
    for env in params.env:
        for existing in _find(container.body.get("env") or [], "name", env["name"]):
            if not _same(existing, env):
                how = (
                    "a different value"
                    if "value" in env and "valueFrom" not in existing
                    else "something else"
                )
                conflicts.append(f"{container.label}: env {env['name']} is already set to {how}")
                break
    for mount in params.volume_mounts:
        for existing in _find(container.body.get("volumeMounts") or [], "mountPath", mount["mountPath"]):
            if existing.get("name") != mount["name"]:
                conflicts.append(
                    f"{container.label}: mountPath {mount['mountPath']} already mounts volume "
                    f"{existing.get('name')}, the preset mounts {mount['name']}"
                )
                break
            if not _same(existing, mount):
                conflicts.append(
                    f"{container.label}: mountPath {mount['mountPath']} mounts {mount['name']} "
                    "with other options than the preset"
                )
                break
    return conflicts


def _inject(container: Container, field: str, items: Sequence[Item]) -> list[Effect]:
    """Append the items the container lacks; identical ones already there are not repeated."""
    effects: list[Effect] = []
    for item in items:
        if any(_same(existing, item) for existing in container.body.get(field) or []):
            continue
        index = _append(container.body, field, item)
        effects.append(Changed(container.path(field, index), f"{container.label}: {_describe(field, item)}"))
    return effects


def _describe(field: str, item: Item) -> str:
    if field == "env":
        return f"env {item['name']} added"
    if field == "volumeMounts":
        return f"volume {item['name']} mounted at {item['mountPath']}"
    reference = "configMapRef" if "configMapRef" in item else "secretRef"
    return f"envFrom {reference} {item[reference]['name']} added"


def _append(body: MutableMapping[str, Any], field: str, item: Item) -> int:
    """Append a copy of `item` to the list `body[field]`, made if missing; the index it landed at."""
    if not isinstance(body.get(field), list):
        body[field] = []
    body[field].append(_copy(item))
    return len(body[field]) - 1


def _find(items: Sequence[Any], key: str, value: str) -> list[Item]:
    return [item for item in items if isinstance(item, Mapping) and item.get(key) == value]


def _source(volume: Item) -> str:
    return next((key for key in volume if key != "name"), "no source")


def _same(a: Any, b: Any) -> bool:
    return bool(_normalise(a) == _normalise(b))


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _normalise(v)
            for k, v in value.items()
            if (k, v) not in _DEFAULTS and not (k in _FALSE_BY_DEFAULT and v is False)
        }
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _copy(item: Item) -> Any:
    return jsoncodec.copy(item)
