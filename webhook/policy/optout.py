"""Opting a pod out of a policy by annotation: honoured only where the policy allows it, and only for
the requesters it names.

An annotation is written by whoever writes the pod, so an opt-out that any pod could carry would let
every tenant step around "requests required". A policy grants the opt-out explicitly (`allowOptOut`),
names its annotation, and names the users, groups or service accounts whose pods may use it. The
requester is whoever creates the pod: for a workload's pods, its controller (docs/workloads.md), so a
policy that names a controller lets everyone who may create that controller's objects opt out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.kube.names import qualified_name_problem
from webhook.policy.model import OptOut
from webhook.rules import Locator

# The value that opts out; anything else ("false", "") leaves the pod judged.
OPT_OUT_VALUE = "true"
DEFAULT_ANNOTATION = "podgate.io/opt-out"

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
# Who a policy speaks of, in `exclude` and in `allowOptOut` alike.
SUBJECT_PROPERTIES: Mapping[str, Any] = {
    "users": {**_STRINGS, "description": "globs on userInfo.username"},
    "groups": _STRINGS,
    "serviceAccounts": {
        "type": "array",
        "items": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
        "description": "namespace/name",
    },
}


def opt_out_schema(default_annotation: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": f'pods annotated <annotation>: "{OPT_OUT_VALUE}" by one of these requesters are '
        "left alone by this policy; nobody else's are",
        "anyOf": [{"required": [key]} for key in SUBJECT_PROPERTIES],
        "properties": {
            "annotation": {"type": "string", "description": f"default {default_annotation}"},
            **SUBJECT_PROPERTIES,
        },
    }


def subject_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The users, groups and serviceAccounts of an `exclude` or `allowOptOut`, as model fields."""
    return {
        "users": tuple(raw.get("users", ())),
        "groups": frozenset(raw.get("groups", ())),
        "service_accounts": frozenset(raw.get("serviceAccounts", ())),
    }


def parse_opt_out(raw: Mapping[str, Any] | None, at: Locator, default_annotation: str) -> OptOut | None:
    if raw is None:
        return None
    annotation = str(raw.get("annotation", default_annotation))
    problem = qualified_name_problem(annotation)
    if problem:
        raise at.error(f"must be a valid annotation key: {problem}", "annotation")
    return OptOut(annotation=annotation, **subject_fields(raw))
