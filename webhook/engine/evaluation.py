"""evaluate(policies, request) -> Decision: pure, no I/O, no clock, no globals."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.engine.decision import Change, Decision, Violation
from webhook.engine.index import Ranked, candidates
from webhook.engine.limits import over_limit
from webhook.engine.match import Undecided, refused_opt_out, why_not
from webhook.engine.workloads import future_pod, labels_only, pod_request
from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.kube.cluster import NO_FACTS, ClusterFacts
from webhook.kube.pods import PodView, template_of, view_of
from webhook.kube.request import AdmissionRequest, parse_request
from webhook.policy.model import BUILTIN_POLICY, Action, Policy, PolicyRule, PolicySet, Rule
from webhook.rules import Changed, Mutator, Warned
from webhook.rules.mutators import MUTATORS
from webhook.rules.validators import VALIDATORS

LIMITS_RULE = "limits"


def evaluate(
    policies: PolicySet,
    request: Mapping[str, Any],
    *,
    validating: bool = False,
    explain: bool = False,
    cluster: ClusterFacts | None = None,
) -> Decision:
    """Judge one AdmissionReview `request` (a dict) against a policy set.

    Mutators run first, in registry order, on a copy; validators then judge the pod as it will run,
    so a pod that the defaults make compliant is admitted. A workload is judged as the pods its
    controller will create from its template, so it is admitted exactly when they would be. The patch
    is one diff against the object exactly as received, which makes a second evaluation of the result
    an empty patch.

    `validating` is for the validating webhook, which the apiserver calls after every mutation: the
    object as received is what will be stored. A pod is then judged exactly as received, never as
    podgate would have defaulted it: if the mutating webhook was skipped (it fails open), a pod
    without requests must be refused, not admitted on the strength of defaults it never got. A
    workload's pods are still judged as mutated: they are mutated when they are created.

    With `explain`, `Decision.skipped` says why each policy rule that was not applied was not; without
    it, rules that cannot apply to the request's kind, operation, namespace or labels are never
    looked at (webhook.engine.index), which is what keeps a large policy set cheap.

    `cluster` is what is known of the cluster (webhook.kube.cluster): the namespace's labels, which a
    policy's `namespaceSelector` reads, and its LimitRanges, which podgate's defaults must fit and whose
    defaults a workload's pods get first. Without it nothing is known: a policy that needs the labels
    is not applied, with a warning saying so.
    """
    return evaluate_request(
        policies, parse_request(request), validating=validating, explain=explain, cluster=cluster
    )


def evaluate_request(
    policies: PolicySet,
    request: AdmissionRequest,
    *,
    validating: bool = False,
    explain: bool = False,
    cluster: ClusterFacts | None = None,
) -> Decision:
    original = request.object
    skipped = _out_of_scope(request)
    if skipped:
        return Decision(object=original, skipped=(skipped,))
    working: dict[str, Any] = _copy(original)
    view = view_of(working, request.kind, request.namespace)
    if view is None:
        return Decision(object=original, skipped=(f"kind {request.kind} has no pod template",))
    facts = cluster or NO_FACTS
    if facts.limit_ranges_known:
        view.limit_ranges = facts.limit_ranges_of(request.namespace)
    excess = over_limit(view)
    if excess:
        # Denied, not waved through: an oversized pod must not be a way around the policies.
        violation = Violation(BUILTIN_POLICY, LIMITS_RULE, Action.ENFORCE, excess)
        return Decision(object=original, violations=(violation,), warnings=(str(violation),))

    run = _Run(policies, request, explain, facts, facts.labels_of(request.namespace))
    workload = ""
    if not view.is_workload:
        if not validating:
            run.mutate(view, request, pod_only=False)
        run.validate(view, request)
    else:
        workload = f"{request.kind} {request.display_name}"
        creation = pod_request(request)
        # Templates are stored as sent unless a policy asks otherwise: GitOps tools would see the
        # stored workload drift from git. Such a policy stores what the pods would get from it.
        run.mutate(
            view,
            creation,
            pod_only=False,
            kind=request.kind,
            judged=lambda: labels_only(request, view),
            only=lambda policy: policy.mutate_templates and not validating,
            on="template",
        )
        # The pods get every mutation when their controller creates them; judge them as they will be.
        pod, creation = future_pod(request, view)
        run.mutate(pod, creation, pod_only=True)
        run.validate(pod, creation, kind=request.kind, prefix=f"{workload}: pod template ")

    return Decision(
        object=working,
        received=original,
        changes=tuple(run.changes),
        violations=tuple(run.violations),
        warnings=tuple(run.warnings),
        skipped=tuple(run.reasons),
        workload=workload,
        checked=tuple(run.checked),
    )


@dataclass
class _Run:
    """What one evaluation has found so far; rule modules always get the admitted object's request."""

    policies: PolicySet
    request: AdmissionRequest
    explain: bool
    facts: ClusterFacts
    namespace_labels: Mapping[str, str] | None
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    checked: list[tuple[str, str]] = field(default_factory=list)

    def mutate(
        self,
        target: PodView,
        matching: AdmissionRequest,
        *,
        pod_only: bool,
        kind: str | None = None,
        judged: Callable[[], PodView] | None = None,
        only: Callable[[Policy], bool] | None = None,
        on: str = "",
    ) -> None:
        """Every mutator in registry order, each policy's rules of it that match, editing `target`.

        `matching`, `kind` and `judged` (the view whose labels selectors see; default `target`) are
        what policies are matched against; see match.why_not.
        """
        where = f" ({on})" if on else ""

        def seen() -> PodView:
            return judged() if judged is not None else target

        for mutator in MUTATORS:
            for policy, rule in self._mutation_rules(mutator, matching, kind, seen):
                if only is not None and not only(policy):
                    continue
                if not self._applies(policy, rule, matching, seen(), mutating=True, kind=kind, where=where):
                    continue
                for effect in mutator.mutate(target, rule.params, self.request):
                    if isinstance(effect, Changed):
                        change = Change(policy.name, rule.name, effect.path, effect.message, pod_only)
                        self.changes.append(change)
                    elif isinstance(effect, Warned):
                        self._warn(f"{policy.name}.{rule.name}: {effect.message}")

    def validate(
        self, pod: PodView, matching: AdmissionRequest, *, kind: str | None = None, prefix: str = ""
    ) -> None:
        for validator in VALIDATORS:
            for policy, rule in self._rules(validator.KEY, matching, kind, pod.labels):
                if not self._applies(policy, rule, matching, pod, mutating=False, kind=kind):
                    continue
                if (policy.name, rule.name) not in self.checked:
                    self.checked.append((policy.name, rule.name))
                for message in validator.check(pod, rule.params, self.request):
                    self.violations.append(Violation(policy.name, rule.name, rule.action, prefix + message))

    def _applies(
        self,
        policy: Policy,
        rule: Rule,
        matching: AdmissionRequest,
        seen: PodView,
        *,
        mutating: bool,
        kind: str | None,
        where: str = "",
    ) -> bool:
        labels = self.namespace_labels
        reason = why_not(policy, matching, seen, mutating=mutating, kind=kind, namespace_labels=labels)
        if reason:
            self.reasons.append(f"{policy.name}.{rule.name}{where}: {reason}")
            if isinstance(reason, Undecided):
                # Not a "no": the user should know a policy was left out, and why.
                self._warn(f"{policy.name}: not applied: {reason}: {self.facts.unknown_hint}")
            return False
        refused = refused_opt_out(policy, matching, seen)
        if refused:
            # Say so: a tenant who tried to opt out should learn why the policy still applies.
            self._warn(f"{policy.name}: {refused}")
        return True

    def _warn(self, warning: str) -> None:
        # A stored template and its pods may both give the same warning: say it once.
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _rules(
        self, key: str, matching: AdmissionRequest, kind: str | None, labels: Mapping[str, Any]
    ) -> Iterator[PolicyRule]:
        """Validation rules that could apply (all of them when explaining: each gets its reason)."""
        if self.explain:
            yield from self.policies.rules_of(key)
            return
        for _, rule in self._ranked(key, matching, kind, labels, mutating=False):
            yield rule

    def _mutation_rules(
        self, mutator: Mutator, matching: AdmissionRequest, kind: str | None, seen: Callable[[], PodView]
    ) -> Iterator[PolicyRule]:
        """Mutation rules that could apply, in order, as the labels they select on stand when each runs.

        A rule that sets labels can make a later rule match that did not when the candidates were
        picked: after such a change, the rules still to come are picked again for the new labels.
        """
        if self.explain:
            yield from self.policies.rules_of(mutator.KEY)
            return
        done = -1
        while True:
            labels = dict(seen().labels)
            pending = [
                r for r in self._ranked(mutator.KEY, matching, kind, labels, mutating=True) if r[0] > done
            ]
            for position, rule in pending:
                yield rule  # the caller applies it before this resumes
                done = position
                if mutator.SETS_LABELS and seen().labels != labels:
                    break
            else:
                return

    def _ranked(
        self,
        key: str,
        matching: AdmissionRequest,
        kind: str | None,
        labels: Mapping[str, Any],
        *,
        mutating: bool,
    ) -> Ranked:
        scope = (key, kind or matching.kind, matching.operation, matching.namespace)
        return candidates(
            self.policies, *scope, labels, mutating=mutating, namespace_labels=self.namespace_labels
        )


def _out_of_scope(request: AdmissionRequest) -> str:
    """Requests podgate admits without looking: the reason, or "" when it should look."""
    if request.operation not in ("CREATE", "UPDATE"):
        return f"operation {request.operation} is never judged"
    if request.sub_resource:
        # Status updates, scaling and `kubectl debug` (pods/ephemeralcontainers) must never be
        # blocked by rules about how a pod was specified when it was created.
        return f"subresource {request.sub_resource} is never judged"
    # Pod specs are mostly immutable, and scaling, labelling or rollout bookkeeping of a workload
    # must never be blocked: on UPDATE, only a changed pod template is judged again.
    old = request.old_object
    if request.operation == "UPDATE" and old is not None and _same_template(request, old):
        return "UPDATE leaves the pod template unchanged"
    return ""


def _same_template(request: AdmissionRequest, old: Mapping[str, Any]) -> bool:
    try:
        return bool(template_of(request.object, request.kind) == template_of(old, request.kind))
    except RecursionError:
        # Only objects nested near orjson's 1,024 levels get here; no Kubernetes object does.
        raise ReviewError("request.object and request.oldObject are nested too deeply to compare") from None


def _copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    try:
        copied: dict[str, Any] = jsoncodec.copy(obj)
    except jsoncodec.EncodeError as error:
        raise ReviewError(f"request.object cannot be judged: {error}") from None
    return copied
