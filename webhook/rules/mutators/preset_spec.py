"""The Preset document (PodPreset's successor): its schema, checked and parsed once at load into Params."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.kube import jsoncodec
from webhook.kube.names import qualified_name_problem
from webhook.kube.selector import SELECTOR_SCHEMA, parse_selector
from webhook.rules import Locator, RuleDocument

KEY = "preset"
SETS_LABELS = False
DOCUMENT_KIND = "Preset"
RULE_NAME = "inject"
# The annotations Kubernetes' PodPreset admission plugin used, so existing tooling keeps reading them.
ANNOTATION_PREFIX = "podpreset.admission.kubernetes.io/"
EXCLUDE_ANNOTATION = ANNOTATION_PREFIX + "exclude"
VERSION_LENGTH = 12

VOLUME_SOURCES = (
    "emptyDir",
    "configMap",
    "secret",
    "projected",
    "downwardAPI",
    "persistentVolumeClaim",
    "hostPath",
    "csi",
    "ephemeral",
    "nfs",
    "image",
)

_STRING = {"type": "string", "minLength": 1}
_REF_PROPERTIES: dict[str, Any] = {"name": _STRING, "optional": {"type": "boolean"}}
_OBJECT_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": _REF_PROPERTIES,
}
_KEY_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "key"],
    "properties": {**_REF_PROPERTIES, "key": _STRING},
}
_ENV_SOURCES = {
    "configMapKeyRef": _KEY_REF,
    "secretKeyRef": _KEY_REF,
    "fieldRef": {
        "type": "object",
        "additionalProperties": False,
        "required": ["fieldPath"],
        "properties": {"apiVersion": _STRING, "fieldPath": _STRING},
    },
    "resourceFieldRef": {
        "type": "object",
        "additionalProperties": False,
        "required": ["resource"],
        "properties": {
            "containerName": _STRING,
            "resource": _STRING,
            "divisor": {"type": ["string", "number"]},
        },
    },
}
ENV_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "description": "a container env var: name and exactly one of value, valueFrom",
    "properties": {
        "name": {"type": "string", "pattern": "^[^=]+$"},
        "value": {"type": "string"},
        "valueFrom": {"type": "object", "additionalProperties": False, "properties": _ENV_SOURCES},
    },
}
ENV_FROM_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "exactly one of configMapRef, secretRef; an optional prefix",
    "properties": {"prefix": {"type": "string"}, "configMapRef": _OBJECT_REF, "secretRef": _OBJECT_REF},
}
VOLUME_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "description": "a pod volume: name and exactly one source",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        **{source: {"type": "object"} for source in VOLUME_SOURCES},
    },
}
MOUNT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "mountPath"],
    "description": "a container volume mount of one of the preset's volumes",
    "properties": {
        "name": _STRING,
        "mountPath": {"type": "string", "pattern": "^/"},
        "readOnly": {"type": "boolean"},
        "subPath": {"type": "string"},
        "subPathExpr": {"type": "string"},
        "mountPropagation": {"enum": ["None", "HostToContainer", "Bidirectional"]},
        "recursiveReadOnly": {"enum": ["Disabled", "IfPossible", "Enabled"]},
    },
}
DOCUMENT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["selector"],
    "properties": {
        "description": {"type": "string"},
        "selector": {**SELECTOR_SCHEMA, "description": "pods whose labels match ({} selects every pod)"},
        "namespaces": {"type": "array", "items": _STRING, "description": "namespace globs (default: all)"},
        "initContainers": {
            "type": "boolean",
            "description": "inject into init containers too (default false)",
        },
        "env": {"type": "array", "items": ENV_SCHEMA},
        "envFrom": {"type": "array", "items": ENV_FROM_SCHEMA},
        "volumes": {"type": "array", "items": VOLUME_SCHEMA},
        "volumeMounts": {"type": "array", "items": MOUNT_SCHEMA},
    },
}
# The policy schema adds `allowOptOut` (with this default annotation) to DOCUMENT_SCHEMA's spec.
OPT_OUT_ANNOTATION = EXCLUDE_ANNOTATION
# Presets are whole documents (kind: Preset); a policy rule cannot be one.
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "not a rule type: write a kind: Preset document",
}

Item = Mapping[str, Any]


@dataclass(frozen=True)
class Params:
    preset: str
    version: str  # short sha256 of the spec: the value of the pod's podpreset-<name> annotation
    env: tuple[Item, ...] = ()
    env_from: tuple[Item, ...] = ()
    volumes: tuple[Item, ...] = ()
    volume_mounts: tuple[Item, ...] = ()
    init_containers: bool = False

    @property
    def annotation(self) -> str:
        return annotation_key(self.preset)


def annotation_key(preset: str) -> str:
    return f"{ANNOTATION_PREFIX}podpreset-{preset}"


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    raise at.error("presets are written as documents of kind Preset, not as policy rules")


def parse_document(data: Mapping[str, Any], at: Locator) -> RuleDocument:
    """A Preset document as a policy of one rule, matching the pods it selects on CREATE only."""
    name = str(data["metadata"]["name"])
    source = at.where()
    problem = qualified_name_problem(annotation_key(name))
    if problem:
        raise at.error(f"too long for the annotation {annotation_key(name)}: {problem}", "metadata", "name")
    spec = data["spec"]
    try:
        selector = parse_selector(spec["selector"])
    except ValueError as error:
        raise at.error(str(error), "spec", "selector") from None
    at = at.child("spec")
    for index, env in enumerate(spec.get("env", ())):
        _one_of(env, ("value", "valueFrom"), at.child("env", index))
        if "valueFrom" in env:
            _one_of(env["valueFrom"], tuple(_ENV_SOURCES), at.child("env", index, "valueFrom"))
    for index, env_from in enumerate(spec.get("envFrom", ())):
        _one_of(env_from, ("configMapRef", "secretRef"), at.child("envFrom", index))
    for index, volume in enumerate(spec.get("volumes", ())):
        _one_of(volume, VOLUME_SOURCES, at.child("volumes", index))
    _unique(spec, "env", "name", at)
    _unique(spec, "volumes", "name", at)
    _unique(spec, "volumeMounts", "mountPath", at)
    volumes = {volume["name"] for volume in spec.get("volumes", ())}
    for index, mount in enumerate(spec.get("volumeMounts", ())):
        if mount["name"] not in volumes:
            message = f"mounts volume {mount['name']!r}, which the preset does not define"
            raise at.error(message, "volumeMounts", index, "name")
    if not any(spec.get(field) for field in ("env", "envFrom", "volumes", "volumeMounts")):
        raise at.error("injects nothing: set env, envFrom, volumes or volumeMounts")
    try:
        # The version names what is injected: who may opt out is not part of it.
        canonical = _canonical({k: v for k, v in spec.items() if k != "allowOptOut"})
    except (TypeError, ValueError):
        # Unquoted dates, .nan, .inf and integers past 64 bits are not JSON: they could not reach a pod.
        raise at.error(
            "must hold only strings, finite numbers (integers within 64 bits), booleans, lists and maps "
            "(quote dates)"
        ) from None
    params = Params(
        preset=name,
        version=hashlib.sha256(canonical).hexdigest()[:VERSION_LENGTH],
        env=tuple(spec.get("env", ())),
        env_from=tuple(spec.get("envFrom", ())),
        volumes=tuple(spec.get("volumes", ())),
        volume_mounts=tuple(spec.get("volumeMounts", ())),
        init_containers=bool(spec.get("initContainers", False)),
    )
    return RuleDocument(
        name=name,
        rule=RULE_NAME,
        params=params,
        kinds=frozenset({"Pod"}),
        operations=frozenset({"CREATE"}),
        namespaces=tuple(spec.get("namespaces", ())),
        selector=selector,
        opt_out_annotation=OPT_OUT_ANNOTATION,
        allow_opt_out=spec.get("allowOptOut"),
        at=at,
        source=source,
        description=str(spec.get("description", "")),
    )


def _one_of(item: Mapping[str, Any], fields: Sequence[str], at: Locator) -> None:
    present = [field for field in fields if field in item]
    if len(present) != 1:
        got = f"got {', '.join(present)}" if present else "got none"
        raise at.error(f"must set exactly one of {', '.join(fields)}; {got}")


def _unique(spec: Mapping[str, Any], field: str, key: str, at: Locator) -> None:
    seen: set[str] = set()
    for index, item in enumerate(spec.get(field, ())):
        if item[key] in seen:
            raise at.error(f"duplicate {key} {item[key]!r}", field, index, key)
        seen.add(item[key])


def _canonical(value: Any) -> bytes:
    jsoncodec.dumps(value)  # raises on integers past 64 bits, which the pod's patch could not carry
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
