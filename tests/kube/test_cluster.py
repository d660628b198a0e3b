"""ClusterFacts: namespace labels known or unknown, LimitRanges by namespace, built from objects."""

from __future__ import annotations

from webhook.kube.cluster import NO_FACTS, facts_from_objects

NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "team-a", "labels": {"env": "test"}},
}
LIMITS = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "low", "namespace": "team-a"},
    "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
}


def test_a_namespace_not_given_is_unknown_not_unlabelled() -> None:
    facts = facts_from_objects([NAMESPACE])
    assert dict(facts.labels_of("team-a") or {}) == {"env": "test", "kubernetes.io/metadata.name": "team-a"}
    assert facts.labels_of("team-b") is None
    assert NO_FACTS.labels_of("team-a") is None


def test_limit_ranges_are_known_once_one_is_given_or_when_told() -> None:
    assert not facts_from_objects([NAMESPACE]).limit_ranges_known
    facts = facts_from_objects([LIMITS, {"apiVersion": "apps/v1", "kind": "Deployment"}])
    assert facts.limit_ranges_known
    assert [r.name for r in facts.limit_ranges_of("team-a")] == ["low"]
    assert facts.limit_ranges_of("team-b") == ()
    assert facts_from_objects([], limit_ranges_known=True).limit_ranges_known


def test_later_objects_and_a_base_combine() -> None:
    base = facts_from_objects([NAMESPACE], unknown_hint="ask the cluster")
    relabelled = {**NAMESPACE, "metadata": {"name": "team-a", "labels": {"env": "prod"}}}
    facts = facts_from_objects([relabelled], base=base)
    assert (facts.labels_of("team-a") or {})["env"] == "prod"
    assert facts.unknown_hint == "ask the cluster"
