"""The JSON Schema of policy files, built from the rule registry, published as schema/policy.schema.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from webhook.kube.pods import POD_KINDS
from webhook.kube.request import OPERATIONS
from webhook.kube.selector import SELECTOR_SCHEMA
from webhook.policy.model import API_VERSION, Action
from webhook.policy.optout import DEFAULT_ANNOTATION, SUBJECT_PROPERTIES, opt_out_schema
from webhook.rules import Mutator, Validator
from webhook.rules.mutators import MUTATORS
from webhook.rules.validators import VALIDATORS

# The published schemas stay in webhook/schema/: policy files name that path in their modeline.
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
PUBLISHED = SCHEMA_DIR / "policy.schema.json"
SCHEMA_ID = "https://podgate.io/schemas/policy.schema.json"

# DNS-1123 labels, like Kubernetes object names: they become metric labels and audit annotation keys.
NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}


def _match_schema(nested: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "kinds": {
            "type": "array",
            "items": {"enum": list(POD_KINDS)},
            "minItems": 1,
            "description": "default: all. A workload is judged as the pods it will create; [Pod] judges pods "
            "only, workload kinds without Pod judge those workloads only (docs/workloads.md)",
        },
        "operations": {"type": "array", "items": {"enum": list(OPERATIONS[:2])}, "minItems": 1},
        "namespaces": {**STRINGS, "description": "namespace globs (fnmatch: *, ?, [...])"},
        "selector": SELECTOR_SCHEMA,
        "namespaceSelector": {
            **SELECTOR_SCHEMA,
            "description": "on the labels of the pod's namespace, which podgate learns from the cluster "
            "(docs/cluster.md)",
        },
    }
    if not nested:
        properties["any"] = {
            "type": "array",
            "minItems": 1,
            "items": _match_schema(nested=True),
            "description": "alternatives: at least one must match, as well as the criteria beside `any`",
        }
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _exclude_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "namespaces": STRINGS,
            "namespaceSelector": {
                **SELECTOR_SCHEMA,
                "description": "leave alone namespaces whose labels match (docs/cluster.md)",
            },
            **SUBJECT_PROPERTIES,
        },
    }


def _rule_schema() -> dict[str, Any]:
    modules: tuple[Mutator | Validator, ...] = (*MUTATORS, *VALIDATORS)
    types: dict[str, Mapping[str, Any]] = {m.KEY: m.SCHEMA for m in modules}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "description": f"a named rule with exactly one rule type: {', '.join(types)}",
        "properties": {
            "name": NAME,
            "description": {"type": "string"},
            "action": {"enum": [a.value for a in Action], "description": "validation rules only"},
            **types,
        },
    }


def document_kinds() -> dict[str, Mapping[str, Any]]:
    """kind -> schema of its spec. Rule-type modules may define a document kind of their own (Preset)."""
    kinds: dict[str, Mapping[str, Any]] = {
        "Policy": {
            "type": "object",
            "additionalProperties": False,
            "required": ["rules"],
            "properties": {
                "description": {"type": "string"},
                "match": _match_schema(),
                "exclude": _exclude_schema(),
                "allowOptOut": opt_out_schema(DEFAULT_ANNOTATION),
                "mutateTemplates": {
                    "type": "boolean",
                    "description": "also store this policy's mutations in workloads' pod templates "
                    "(default false: only the pods get them, the stored workload stays as sent)",
                },
                "rules": {"type": "array", "items": _rule_schema(), "minItems": 1},
            },
        }
    }
    for module in (*MUTATORS, *VALIDATORS):
        kind = getattr(module, "DOCUMENT_KIND", None)
        if kind:
            spec = module.DOCUMENT_SCHEMA  # type: ignore[attr-defined]
            annotation = module.OPT_OUT_ANNOTATION  # type: ignore[attr-defined]
            properties = {**spec["properties"], "allowOptOut": opt_out_schema(annotation)}
            kinds[kind] = {**spec, "properties": properties}
    return kinds


def policy_schema() -> dict[str, Any]:
    kinds = document_kinds()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "podgate policy document",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": list(kinds)},
            "metadata": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": NAME,
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": {"type": "object"},
        },
        "allOf": [
            {"if": {"properties": {"kind": {"const": kind}}}, "then": {"properties": {"spec": spec}}}
            for kind, spec in kinds.items()
        ],
    }


def render() -> str:
    return json.dumps(policy_schema(), indent=2, sort_keys=False) + "\n"
