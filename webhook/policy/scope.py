"""A policy's scope as written: `match` and `exclude` parsed into the model, and scopes that can never
apply, refused at load rather than left to do nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.errors import PolicyIssue
from webhook.kube.selector import Selector, parse_selector
from webhook.policy.model import Exclude, Match, Policy
from webhook.policy.optout import subject_fields
from webhook.rules import Locator


def parse_match(raw: Mapping[str, Any], at: Locator) -> Match:
    return Match(
        kinds=frozenset(raw["kinds"]) if "kinds" in raw else None,
        operations=frozenset(raw["operations"]) if "operations" in raw else None,
        namespaces=tuple(raw.get("namespaces", ())),
        selector=_selector(raw, "selector", at),
        namespace_selector=_selector(raw, "namespaceSelector", at),
        any=tuple(parse_match(alt, at.child("any", i)) for i, alt in enumerate(raw.get("any", ()))),
    )


def parse_exclude(raw: Mapping[str, Any], at: Locator | None = None) -> Exclude:
    selector = _selector(raw, "namespaceSelector", at or Locator("<exclude>", {}))
    return Exclude(
        namespaces=tuple(raw.get("namespaces", ())), namespace_selector=selector, **subject_fields(raw)
    )


def _selector(raw: Mapping[str, Any], key: str, at: Locator) -> Selector | None:
    if key not in raw:
        return None
    try:
        return parse_selector(raw[key])
    except ValueError as error:
        raise at.error(str(error), key) from None


def never_applies(policy: Policy, at: Locator) -> list[PolicyIssue]:
    """Policies that would silently do nothing, given how workloads are judged (docs/workloads.md)."""
    kinds, operations = policy.match.kinds, policy.match.operations
    mutates = any(rule.mutates for rule in policy.rules)
    validates = any(not rule.mutates for rule in policy.rules)
    workloads_only = kinds is not None and "Pod" not in kinds
    issues = []
    if mutates and not policy.mutate_templates and workloads_only:
        issues.append(
            at.issue(
                "lists no Pod, so this policy's mutations never apply: workloads' pods get mutations "
                "when they are created, templates only with mutateTemplates: true",
                "match",
                "kinds",
            )
        )
    if policy.mutate_templates and (not mutates or (kinds is not None and kinds <= {"Pod"})):
        why = "the policy has no mutation rule" if not mutates else "match.kinds lists no workload kind"
        issues.append(at.issue(f"has no effect: {why}", "mutateTemplates"))
    if validates and workloads_only and operations is not None and "CREATE" not in operations:
        issues.append(
            at.issue(
                "lacks CREATE, so these workloads are never judged: a workload is judged as the pods "
                "it will create, and pods are only ever created",
                "match",
                "operations",
            )
        )
    return issues
