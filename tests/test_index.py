"""The candidate index only prunes: it never changes which rules apply, and it stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURE_FILES, fixture_request, policy_text
from webhook import PolicySet, evaluate
from webhook.index import MEMO_LIMIT, candidates
from webhook.match import why_not
from webhook.pods import POD_KINDS, view_of
from webhook.request import parse_request

# Policies that each scope themselves differently: exact and glob namespaces, kinds, operations, a
# protected namespace named exactly, and `any:` alternatives that mix them.
SCOPED = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: exact-namespace}
spec:
  match: {namespaces: [team-a]}
  rules: [{name: r, requireRequests: {resources: [cpu]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: glob-namespace}
spec:
  match: {namespaces: ["team-*"], kinds: [Pod]}
  rules: [{name: r, requireRequests: {resources: [memory]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: workloads-only}
spec:
  match: {kinds: [Deployment, StatefulSet], operations: [CREATE, UPDATE]}
  rules: [{name: r, requireRequests: {resources: [cpu]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: kube-system-named}
spec:
  match: {namespaces: [kube-system]}
  rules: [{name: r, requireRequests: {resources: [cpu]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: alternatives}
spec:
  match:
    any:
      - namespaces: ["prod-*"]
      - kinds: [Job, CronJob]
      - selector: {matchLabels: {tier: web}}
  rules: [{name: r, requireRequests: {resources: [cpu, memory]}}]
"""

NAMESPACES = ["team-a", "team-b", "prod-x", "kube-system", "podgate", "default", "capture-demo"]


@given(
    kind=st.sampled_from(sorted(POD_KINDS)),
    operation=st.sampled_from(["CREATE", "UPDATE"]),
    namespace=st.sampled_from(NAMESPACES),
    mutating=st.booleans(),
    labelled=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_candidates_hold_every_rule_that_applies(
    kind: str, operation: str, namespace: str, mutating: bool, labelled: bool
) -> None:
    policies = policy_text(SCOPED)
    request = fixture_request("0001")
    request.update(operation=operation, namespace=namespace)
    if labelled:
        request["object"]["metadata"]["labels"] = {"tier": "web"}
    parsed = parse_request(request)
    pod = view_of(dict(parsed.object), "Pod", namespace)
    assert pod is not None
    found = candidates(policies, "requireRequests", kind, operation, namespace, mutating=mutating)
    applying = [
        (policy, rule)
        for policy, rule in policies.rules_of("requireRequests")
        if why_not(policy, parsed, pod, mutating=mutating, kind=kind) is None
    ]
    assert set(applying) <= set(found)
    assert list(found) == [pair for pair in policies.rules_of("requireRequests") if pair in found]


def test_protected_and_foreign_namespaces_prune_policies() -> None:
    policies = policy_text(SCOPED)
    names = [
        p.name
        for p, _ in candidates(policies, "requireRequests", "Pod", "CREATE", "kube-system", mutating=False)
    ]
    assert names == ["kube-system-named"]
    names = [
        p.name for p, _ in candidates(policies, "requireRequests", "Pod", "CREATE", "default", mutating=False)
    ]
    assert names == ["alternatives"]


@pytest.mark.parametrize("fixture", [f.name[:4] for f in FIXTURE_FILES])
def test_explaining_changes_nothing_but_the_reasons(default_policies: PolicySet, fixture: str) -> None:
    quick = evaluate(default_policies, fixture_request(fixture))
    explained = evaluate(default_policies, fixture_request(fixture), explain=True)
    assert (quick.patch, quick.changes, quick.violations, quick.warnings) == (
        explained.patch,
        explained.changes,
        explained.violations,
        explained.warnings,
    )
    assert set(quick.skipped) <= set(explained.skipped)


def test_the_memo_is_per_policy_set_and_bounded() -> None:
    policies = policy_text(SCOPED)
    for index in range(MEMO_LIMIT + 10):
        candidates(policies, "requireRequests", "Pod", "CREATE", f"ns-{index}", mutating=False)
    assert 0 < len(policies.memo) <= MEMO_LIMIT
    assert policy_text(SCOPED).memo == {}
