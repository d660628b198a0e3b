"""evaluate(..., cluster=facts): namespaceSelector in match, any: and exclude, unknown labels, LimitRanges."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import fixture_request, policy_text
from webhook import evaluate
from webhook.kube.cluster import ClusterFacts, facts_from_objects

SELECTING = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: strict}
spec:
  match:
    namespaceSelector: {matchLabels: {podgate.io/defaults: strict}}
  rules: [{name: requests, requireRequests: {resources: [cpu]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: either}
spec:
  match:
    any:
      - namespaces: [capture-demo]
      - namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [test]}]}
  exclude:
    namespaceSelector: {matchLabels: {podgate.io/ignore: "true"}}
  rules: [{name: memory, requireRequests: {resources: [memory]}}]
"""


def namespace(**labels: str) -> ClusterFacts:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "capture-demo", "labels": labels}}
    return facts_from_objects([obj], unknown_hint="say where labels come from")


def violated(facts: ClusterFacts | None, request: dict[str, Any] | None = None) -> list[str]:
    decision = evaluate(policy_text(SELECTING), request or fixture_request("0002"), cluster=facts)
    return sorted(v.policy for v in decision.violations)


def test_a_namespace_selector_matches_the_namespace_labels() -> None:
    assert violated(namespace(**{"podgate.io/defaults": "strict"})) == ["either", "strict"]
    assert violated(namespace()) == ["either"]


def test_exclude_by_namespace_labels() -> None:
    assert violated(namespace(**{"podgate.io/ignore": "true"})) == []


def test_unknown_labels_leave_the_policy_out_and_say_so() -> None:
    decision = evaluate(policy_text(SELECTING), fixture_request("0002"), cluster=ClusterFacts())
    assert decision.violations == ()
    unknown = (
        "not applied: labels of namespace capture-demo are unknown: podgate was given no namespace labels"
    )
    assert decision.warnings == (f"either: {unknown}", f"strict: {unknown}")


def test_an_alternative_that_needs_no_labels_still_decides() -> None:
    other = fixture_request("0002")
    other["namespace"] = "elsewhere"
    facts = namespace(env="test")
    assert violated(facts, other) == []
    decision = evaluate(policy_text(SELECTING), other, cluster=facts, explain=True)
    assert (
        "either.memory: namespace elsewhere does not match capture-demo "
        "and labels of namespace elsewhere are unknown" in decision.skipped
    )


def test_policies_without_namespace_selectors_never_warn() -> None:
    decision = evaluate(
        policy_text(SELECTING.split("---")[0].replace("namespaceSelector", "selector")),
        fixture_request("0002"),
    )
    assert decision.warnings == ()


REQUIRED = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: requests}
spec:
  rules: [{name: cpu, requireRequests: {resources: [cpu, memory]}}]
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: defaults}
spec:
  match: {kinds: [Pod]}
  rules:
    - name: resources
      resources: {defaults: {cpu: {request: 100m, limit: "1"}, memory: {request: 256Mi, limit: 256Mi}}}
"""
LIMITS = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "low", "namespace": "capture-demo"},
    "spec": {
        "limits": [{"type": "Container", "max": {"memory": "128Mi"}, "maxLimitRequestRatio": {"cpu": "4"}}]
    },
}


def test_defaults_fit_the_namespace_limit_range() -> None:
    facts = facts_from_objects([LIMITS])
    decision = evaluate(policy_text(REQUIRED), fixture_request("0002"), cluster=facts)
    resources = decision.object["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "400m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    assert [c.message for c in decision.changes] == [
        'container "app": cpu limit set to 400m, not the default 1: '
        "LimitRange low's maxLimitRequestRatio is 4 and the request is 100m",
        'container "app": cpu request set to 100m',
        'container "app": memory limit set to 128Mi, not the default 256Mi: LimitRange low\'s max is 128Mi',
        'container "app": memory request set to 128Mi, not the default 256Mi: LimitRange low\'s max is 128Mi',
    ]


@pytest.mark.parametrize("known", [True, False], ids=["limit-range-defaults", "no-facts"])
def test_a_workloads_pods_get_the_limit_range_defaults_first(known: bool) -> None:
    limits = {**LIMITS, "spec": {"limits": [{"type": "Container", "default": {"cpu": "1", "memory": "1Gi"}}]}}
    deployment = fixture_request("0024")  # a Deployment whose container sets no resources
    facts = facts_from_objects([limits]) if known else None
    # Only the requests rule: the Deployment's pods get their requests from the LimitRange or not at all.
    decision = evaluate(policy_text(REQUIRED.split("---")[0]), deployment, cluster=facts)
    assert decision.allowed is known
