"""The candidate index only prunes: it never changes which rules apply, and it stays bounded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURE_FILES, fixture_request, policy_text
from webhook import PolicySet, evaluate
from webhook.engine.index import MEMO_LIMIT, candidates
from webhook.engine.match import why_not
from webhook.kube.pods import POD_KINDS, view_of
from webhook.kube.request import parse_request

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
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: labelled}
spec:
  match:
    selector:
      matchLabels: {tier: web}
      matchExpressions: [{key: track, operator: NotIn, values: [canary]}]
  rules: [{name: r, requireRequests: {resources: [cpu]}}]
"""
# A label default that makes a second labels policy, and a resources policy, match: label pruning must
# see the labels as they are when each rule type runs.
CHAINED = """apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: a-team}
spec:
  rules: [{name: r, labels: {defaults: {team: a}}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: b-of-team-a}
spec:
  match: {selector: {matchLabels: {team: a}}}
  rules: [{name: r, labels: {defaults: {tier: web}}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: c-web-resources}
spec:
  match: {selector: {matchLabels: {tier: web}}}
  rules: [{name: r, resources: {defaults: {cpu: {request: 50m}}}}]
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
    ranked = candidates(
        policies, "requireRequests", kind, operation, namespace, pod.labels, mutating=mutating
    )
    found = [rule for _, rule in ranked]
    applying = [
        (policy, rule)
        for policy, rule in policies.rules_of("requireRequests")
        if why_not(policy, parsed, pod, mutating=mutating, kind=kind) is None
    ]
    assert set(applying) <= set(found)
    assert found == [pair for pair in policies.rules_of("requireRequests") if pair in found]
    assert all(policies.rules_of("requireRequests")[position] == rule for position, rule in ranked)


def test_namespaces_kinds_and_needed_labels_prune_policies() -> None:
    policies = policy_text(SCOPED)

    def names(namespace: str, labels: dict[str, Any] | None = None) -> list[str]:
        found = candidates(
            policies, "requireRequests", "Pod", "CREATE", namespace, labels or {}, mutating=False
        )
        return [policy.name for _, (policy, _) in found]

    assert names("kube-system") == ["kube-system-named"]
    assert names("default") == ["alternatives"]
    assert names("team-b") == ["alternatives", "glob-namespace"]
    # A policy that needs a label is only looked at for pods that carry it, and in policy order.
    assert names("team-b", {"tier": "web"}) == ["alternatives", "glob-namespace", "labelled"]
    assert names("team-b", {"tier": ["not", "a", "string"]}) == ["alternatives", "glob-namespace"]


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


def test_labels_set_by_earlier_rules_are_seen() -> None:
    quick = evaluate(policy_text(CHAINED), fixture_request("0001"))
    explained = evaluate(policy_text(CHAINED), fixture_request("0001"), explain=True)
    assert quick.patch == explained.patch
    assert {c.policy for c in quick.changes} == {"a-team", "b-of-team-a", "c-web-resources"}


def test_the_memo_is_per_policy_set_and_bounded() -> None:
    policies = policy_text(SCOPED)
    for index in range(MEMO_LIMIT + 10):
        candidates(policies, "requireRequests", "Pod", "CREATE", f"ns-{index}", {}, mutating=False)
    assert 0 < len(policies.memo) <= MEMO_LIMIT
    assert policy_text(SCOPED).memo == {}


def test_a_label_set_later_does_not_reach_back_to_earlier_rules() -> None:
    # Policies run in name order: "a-needs-team" is looked at before "z-sets-team" adds the label,
    # with or without the index.
    reverse = CHAINED.replace("name: a-team", "name: z-sets-team").replace(
        "name: b-of-team-a", "name: a-needs-team"
    )
    quick = evaluate(policy_text(reverse), fixture_request("0001"))
    explained = evaluate(policy_text(reverse), fixture_request("0001"), explain=True)
    assert quick.patch == explained.patch
    assert {c.policy for c in quick.changes} == {"z-sets-team"}


# Policies that select namespaces by label, per team and by environment, mixed with name globs and pod
# labels: the memo must never serve what a namespace's earlier labels selected.
BY_NAMESPACE_LABELS = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: team-a}
spec:
  match: {namespaceSelector: {matchLabels: {team: a}}}
  rules: [{name: r, requireRequests: {resources: [cpu]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: not-prod}
spec:
  match: {namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}}
  rules: [{name: r, requireRequests: {resources: [memory]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: web-or-team-b}
spec:
  match:
    any:
      - selector: {matchLabels: {tier: web}}
      - namespaceSelector: {matchLabels: {team: b}}
  exclude: {namespaceSelector: {matchLabels: {frozen: "yes"}}}
  rules: [{name: r, requireRequests: {resources: [cpu, memory]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: by-name}
spec:
  match: {namespaces: ["team-*"]}
  rules: [{name: r, requireRequests: {resources: [cpu]}}]
"""
NAMESPACE_LABELS = st.one_of(
    st.none(),  # unknown
    st.dictionaries(
        st.sampled_from(["team", "env", "frozen"]),
        st.sampled_from(["a", "b", "prod", "test", "yes"]),
        max_size=3,
    ),
)


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["team-a", "default"]), NAMESPACE_LABELS, st.booleans()),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=300, deadline=None)
def test_candidates_follow_a_namespace_through_its_relabellings(
    steps: list[tuple[str, dict[str, str] | None, bool]],
) -> None:
    # One policy set, hence one memo, for the whole sequence: as in a server whose namespaces get relabelled.
    policies = policy_text(BY_NAMESPACE_LABELS)
    for namespace, namespace_labels, web in steps:
        request = fixture_request("0001")
        request["namespace"] = namespace
        request["object"]["metadata"]["labels"] = {"tier": "web"} if web else {}
        parsed = parse_request(request)
        pod = view_of(dict(parsed.object), "Pod", namespace)
        assert pod is not None
        ranked = candidates(
            policies, "requireRequests", "Pod", "CREATE", namespace, pod.labels,
            mutating=False, namespace_labels=namespace_labels,
        )  # fmt: skip
        found = {rule for _, rule in ranked}
        applying = {
            (policy, rule)
            for policy, rule in policies.rules_of("requireRequests")
            if why_not(policy, parsed, pod, mutating=False, namespace_labels=namespace_labels) is None
        }
        assert applying <= found


def test_namespace_labels_prune_and_unknown_labels_prune_nothing() -> None:
    policies = policy_text(BY_NAMESPACE_LABELS)

    def names(labels: dict[str, str] | None) -> list[str]:
        scope = ("requireRequests", "Pod", "CREATE", "default", {})
        found = candidates(policies, *scope, mutating=False, namespace_labels=labels)
        return [policy.name for _, (policy, _) in found]

    # web-or-team-b stays a candidate: its other alternative selects on the pod's labels.
    assert names({"env": "prod"}) == ["web-or-team-b"]
    assert names({"team": "a", "env": "prod"}) == ["team-a", "web-or-team-b"]
    assert names({"team": "b"}) == ["not-prod", "web-or-team-b"]
    assert names(None) == ["not-prod", "team-a", "web-or-team-b"]
    assert len(policies.memo) == 4
