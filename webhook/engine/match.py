"""Whether a policy applies to a request: AND-ed predicates, each "no" with a reason for logs."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from webhook.kube.pods import POD_KINDS, PodView
from webhook.kube.request import AdmissionRequest
from webhook.policy.model import Exclude, Match, OptOut, Policy
from webhook.policy.optout import OPT_OUT_VALUE

# Namespaces a policy only reaches when it names them exactly: a broken default there can stop the
# control plane, or podgate itself, from starting pods.
PROTECTED_NAMESPACES = ("kube-system", "podgate")
_GLOB = set("*?[")

MUTATE_OPERATIONS = frozenset({"CREATE"})
VALIDATE_OPERATIONS = frozenset({"CREATE", "UPDATE"})
POD_KIND_SET = frozenset(POD_KINDS)


class Undecided(str):
    """A reason that is not a "no" but a "cannot tell": the policy needs namespace labels nobody knows.

    The policy is not applied, and the evaluation says so in a warning (docs/cluster.md).
    """

    __slots__ = ()


Labels = Mapping[str, str]


def why_not(
    policy: Policy,
    request: AdmissionRequest,
    pod: PodView,
    *,
    mutating: bool,
    kind: str | None = None,
    namespace_labels: Labels | None = None,
) -> str | None:
    """None when the policy applies; otherwise the first reason it does not (an Undecided one when it
    needs `namespace_labels` and they are unknown, None).

    `kind` is what `match.kinds` is tested against when it is not the request's kind: a workload is
    judged through its future pod's request (a Pod CREATE by its controller), but a policy's kinds
    still choose which workloads it judges.
    """
    namespace = request.namespace
    if namespace in PROTECTED_NAMESPACES and namespace not in named_namespaces(policy.match):
        return f"namespace {namespace} is protected unless a policy names it"
    judged_kind = kind or request.kind
    return (
        _why_not_match(policy.match, request, pod, mutating, judged_kind, namespace_labels)
        or _why_excluded(policy.exclude, request, namespace_labels)
        or _why_opted_out(policy.opt_out, request, pod)
    )


def refused_opt_out(policy: Policy, request: AdmissionRequest, pod: PodView) -> str | None:
    """Why a pod's opt-out annotation was not honoured, for a warning; None when it carries none."""
    opt_out = policy.opt_out
    if opt_out is None or not _carries(pod, opt_out.annotation) or _who(opt_out, request):
        return None
    requester = request.username or "this requester"
    return f"annotation {opt_out.annotation} ignored: {requester} may not opt out of this policy"


def named_namespaces(match: Match) -> set[str]:
    return {n for m in (match, *match.any) for n in m.namespaces if not is_glob(n)}


def could_apply(
    policy: Policy,
    kind: str,
    operation: str,
    namespace: str,
    *,
    mutating: bool,
    namespace_labels: Labels | None = None,
) -> bool:
    """Whether a policy could apply to a request of this kind, operation and namespace (with these
    namespace labels, None when unknown), whatever its pod labels and user: the part of why_not that
    webhook.engine.index may remember per policy set."""
    if namespace in PROTECTED_NAMESPACES and namespace not in named_namespaces(policy.match):
        return False

    def possible(m: Match) -> bool:
        if _why_not_scope(m, kind, operation, namespace, mutating):
            return False
        # Unknown labels prune nothing: why_not must see the policy to say it cannot be decided.
        return not _why_not_namespace(m, namespace, namespace_labels) or namespace_labels is None

    match = policy.match
    return possible(match) and (not match.any or any(possible(m) for m in match.any))


def _why_not_match(
    match: Match,
    request: AdmissionRequest,
    pod: PodView,
    mutating: bool,
    kind: str,
    namespace_labels: Labels | None,
) -> str | None:
    reason = _why_not_scope(match, kind, request.operation, request.namespace, mutating)
    if reason:
        return reason
    if match.selector is not None and not match.selector.matches(pod.labels):
        return f"labels do not match selector {match.selector}"
    reason = _why_not_namespace(match, request.namespace, namespace_labels)
    if reason:
        return reason
    if match.any:
        reasons = [_why_not_match(m, request, pod, mutating, kind, namespace_labels) for m in match.any]
        if all(reasons):
            joined = " and ".join(r for r in reasons if r)
            # Had the labels been known, an undecided alternative might have matched.
            return Undecided(joined) if any(isinstance(r, Undecided) for r in reasons) else joined
    return None


def _why_not_namespace(match: Match, namespace: str, labels: Labels | None) -> str | None:
    selector = match.namespace_selector
    if selector is None:
        return None
    if labels is None:
        return Undecided(f"labels of namespace {namespace} are unknown")
    if not selector.matches(labels):
        return f"labels of namespace {namespace} do not match namespaceSelector {selector}"
    return None


def _why_not_scope(match: Match, kind: str, operation: str, namespace: str, mutating: bool) -> str | None:
    """The criteria that depend only on what is admitted where: kind, operation, namespace."""
    kinds = match.kinds if match.kinds is not None else POD_KIND_SET
    if kind not in kinds:
        return f"kind {kind} is not among {', '.join(sorted(kinds))}"
    default_operations = MUTATE_OPERATIONS if mutating else VALIDATE_OPERATIONS
    operations = match.operations if match.operations is not None else default_operations
    if operation not in operations:
        return f"operation {operation} is not among {', '.join(sorted(operations))}"
    if match.namespaces and not any(fnmatchcase(namespace, glob) for glob in match.namespaces):
        return f"namespace {namespace} does not match {', '.join(match.namespaces)}"
    return None


def _why_excluded(exclude: Exclude, request: AdmissionRequest, labels: Labels | None) -> str | None:
    if not exclude:
        return None
    if any(fnmatchcase(request.namespace, glob) for glob in exclude.namespaces):
        return f"namespace {request.namespace} is excluded"
    who = _who(exclude, request)
    if who:
        return f"{who} is excluded"
    selector = exclude.namespace_selector
    if selector is not None:
        if labels is None:
            return Undecided(f"labels of namespace {request.namespace} are unknown")
        if selector.matches(labels):
            return f"namespace {request.namespace} is excluded by namespaceSelector {selector}"
    return None


def _why_opted_out(opt_out: OptOut | None, request: AdmissionRequest, pod: PodView) -> str | None:
    if opt_out is None or not _carries(pod, opt_out.annotation):
        return None
    who = _who(opt_out, request)
    return f"opted out by annotation {opt_out.annotation}, which {who} may set" if who else None


def _carries(pod: PodView, annotation: str) -> bool:
    # Read, never setdefault: matching must not add an empty metadata to the object.
    metadata = pod.template.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return isinstance(annotations, Mapping) and annotations.get(annotation) == OPT_OUT_VALUE


def _who(subjects: Exclude | OptOut, request: AdmissionRequest) -> str | None:
    """Which of the named users, groups or service accounts made the request ("user alice"); None if none."""
    if any(fnmatchcase(request.username, glob) for glob in subjects.users):
        return f"user {request.username}"
    groups = subjects.groups.intersection(request.groups)
    if groups:
        return f"group {sorted(groups)[0]}"
    prefix = "system:serviceaccount:"
    if request.username.startswith(prefix):
        account = request.username[len(prefix) :].replace(":", "/", 1)
        if account in subjects.service_accounts:
            return f"service account {account}"
    return None


def is_glob(pattern: str) -> bool:
    return bool(_GLOB.intersection(pattern))
