"""Whether a policy applies to a request: AND-ed predicates, each "no" with a reason for logs."""

from __future__ import annotations

from fnmatch import fnmatchcase

from webhook.pods import POD_KINDS, PodView
from webhook.policy import Exclude, Match, Policy
from webhook.request import AdmissionRequest

# Namespaces a policy only reaches when it names them exactly: a broken default there can stop the
# control plane, or podgate itself, from starting pods.
PROTECTED_NAMESPACES = ("kube-system", "podgate")
_GLOB = set("*?[")

MUTATE_OPERATIONS = frozenset({"CREATE"})
VALIDATE_OPERATIONS = frozenset({"CREATE", "UPDATE"})


def why_not(
    policy: Policy, request: AdmissionRequest, pod: PodView, *, mutating: bool, kind: str | None = None
) -> str | None:
    """None when the policy applies; otherwise the first reason it does not.

    `kind` is what `match.kinds` is tested against when it is not the request's kind: a workload is
    judged through its future pod's request (a Pod CREATE by its controller), but a policy's kinds
    still choose which workloads it judges.
    """
    namespace = request.namespace
    if namespace in PROTECTED_NAMESPACES and namespace not in named_namespaces(policy.match):
        return f"namespace {namespace} is protected unless a policy names it"
    judged_kind = kind or request.kind
    return _why_not_match(policy.match, request, pod, mutating, judged_kind) or _why_excluded(
        policy.exclude, request
    )


def named_namespaces(match: Match) -> set[str]:
    return {n for m in (match, *match.any) for n in m.namespaces if not is_glob(n)}


def _why_not_match(
    match: Match, request: AdmissionRequest, pod: PodView, mutating: bool, kind: str
) -> str | None:
    kinds = match.kinds if match.kinds is not None else frozenset(POD_KINDS)
    if kind not in kinds:
        return f"kind {kind} is not among {', '.join(sorted(kinds))}"
    default_operations = MUTATE_OPERATIONS if mutating else VALIDATE_OPERATIONS
    operations = match.operations if match.operations is not None else default_operations
    if request.operation not in operations:
        return f"operation {request.operation} is not among {', '.join(sorted(operations))}"
    namespace = request.namespace
    if match.namespaces and not any(fnmatchcase(namespace, glob) for glob in match.namespaces):
        return f"namespace {namespace} does not match {', '.join(match.namespaces)}"
    if match.selector is not None and not match.selector.matches(pod.labels):
        return f"labels do not match selector {match.selector}"
    if match.any:
        reasons = [_why_not_match(m, request, pod, mutating, kind) for m in match.any]
        if all(reasons):
            return " and ".join(r for r in reasons if r)
    return None


def _why_excluded(exclude: Exclude, request: AdmissionRequest) -> str | None:
    if any(fnmatchcase(request.namespace, glob) for glob in exclude.namespaces):
        return f"namespace {request.namespace} is excluded"
    if any(fnmatchcase(request.username, glob) for glob in exclude.users):
        return f"user {request.username} is excluded"
    excluded_groups = exclude.groups.intersection(request.groups)
    if excluded_groups:
        return f"group {sorted(excluded_groups)[0]} is excluded"
    prefix = "system:serviceaccount:"
    if request.username.startswith(prefix):
        account = request.username[len(prefix) :].replace(":", "/", 1)
        if account in exclude.service_accounts:
            return f"service account {account} is excluded"
    return None


def is_glob(pattern: str) -> bool:
    return bool(_GLOB.intersection(pattern))
