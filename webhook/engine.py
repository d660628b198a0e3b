"""evaluate(policies, request) -> Decision: pure, no I/O, no clock, no globals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from webhook.decision import Change, Decision, Violation
from webhook.match import why_not
from webhook.mutators import MUTATORS
from webhook.patch import diff, pointer
from webhook.pods import PodView, template_of, view_of
from webhook.policy import PolicySet
from webhook.request import AdmissionRequest, parse_request
from webhook.rules import Changed, Warned
from webhook.validators import VALIDATORS


def evaluate(policies: PolicySet, request: Mapping[str, Any]) -> Decision:
    """Judge one AdmissionReview `request` (a dict) against a policy set.

    Mutators run first, in registry order, on a copy; validators then judge the object as it will be
    stored, so a pod that the defaults make compliant is admitted. The patch is one diff against the
    object exactly as received, which makes a second evaluation of the result an empty patch.
    """
    return evaluate_request(policies, parse_request(request))


def evaluate_request(policies: PolicySet, request: AdmissionRequest) -> Decision:
    original = request.object
    skipped = _out_of_scope(request)
    working: dict[str, Any] = _copy(original)
    pod = view_of(working, request.kind, request.namespace)
    if skipped or pod is None:
        return Decision(object=original, skipped=(skipped or f"kind {request.kind} has no pod template",))

    changes: list[Change] = []
    warnings: list[str] = []
    reasons: list[str] = []
    # A workload's template is mutated on a scratch copy to judge the pods it will make; the
    # stored object only changes for policies that ask for it (mutateTemplates).
    stored = working if not pod.is_workload else _copy(original)
    stored_pod = view_of(stored, request.kind, request.namespace) if pod.is_workload else None
    for mutator in MUTATORS:
        for policy, rule in policies.rules_of(mutator.KEY):
            reason = why_not(policy, request, pod, mutating=True)
            if reason:
                reasons.append(f"{policy.name}.{rule.name}: {reason}")
                continue
            targets: list[PodView] = [pod]
            if stored_pod is not None and policy.mutate_templates:
                targets.append(stored_pod)
            for index, target in enumerate(targets):
                for effect in mutator.mutate(target, rule.params, request):
                    if index > 0:
                        continue  # the same effects, already recorded for the judged copy
                    if isinstance(effect, Changed):
                        changes.append(Change(policy.name, rule.name, pointer(*effect.path), effect.message))
                    elif isinstance(effect, Warned):
                        warnings.append(f"{policy.name}.{rule.name}: {effect.message}")

    violations: list[Violation] = []
    for validator in VALIDATORS:
        for policy, rule in policies.rules_of(validator.KEY):
            reason = why_not(policy, request, pod, mutating=False)
            if reason:
                reasons.append(f"{policy.name}.{rule.name}: {reason}")
                continue
            for message in validator.check(pod, rule.params, request):
                if pod.is_workload:
                    message = f"{request.kind} {request.display_name}: pod template {message}"
                violations.append(Violation(policy.name, rule.name, rule.action, message))

    patch = tuple(diff(original, stored))
    return Decision(
        object=stored if patch else original,
        patch=patch,
        changes=tuple(changes),
        violations=tuple(violations),
        warnings=tuple(warnings),
        skipped=tuple(reasons),
    )


def _out_of_scope(request: AdmissionRequest) -> str:
    """Requests podgate admits without looking: the reason, or "" when it should look."""
    if request.operation not in ("CREATE", "UPDATE"):
        return f"operation {request.operation} is never judged"
    # Pod specs are mostly immutable, and scaling, labelling or rollout bookkeeping of a workload
    # must never be blocked: on UPDATE, only a changed pod template is judged again.
    old = request.old_object
    if request.operation == "UPDATE" and old is not None and _same_template(request, old):
        return "UPDATE leaves the pod template unchanged"
    return ""


def _same_template(request: AdmissionRequest, old: Mapping[str, Any]) -> bool:
    return bool(template_of(request.object, request.kind) == template_of(old, request.kind))


def _copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip is a faster deep copy than copy.deepcopy for JSON-shaped data.
    copied: dict[str, Any] = json.loads(json.dumps(obj))
    return copied
