from typing import Any

import pytest

from tests.conftest import evaluate_twice, fixture_request, pod_with, policy_text
from webhook import evaluate

POLICY = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: defaults}
spec:
  rules:
    - name: sizes
      resources:
        defaults:
          cpu: {request: 100m, limit: 500m}
          memory: {request: 256Mi, limit: 256Mi}
        EXTRA
"""


def _run(containers: list[dict[str, Any]], extra: str = "", init: list[dict[str, Any]] | None = None) -> Any:
    return evaluate_twice(policy_text(POLICY.replace("EXTRA", extra)), pod_with(containers, init))


def _resources(decision: Any, index: int = 0, list_name: str = "containers") -> Any:
    return decision.object["spec"][list_name][index]["resources"]


def test_fills_missing_requests_and_limits() -> None:
    decision = _run([{"name": "a", "resources": {}}])
    assert _resources(decision) == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    assert [c.message for c in decision.changes] == [
        'container "a": cpu limit set to 500m',
        'container "a": cpu request set to 100m',
        'container "a": memory limit set to 256Mi',
        'container "a": memory request set to 256Mi',
    ]


def test_a_container_without_a_resources_field_gets_one() -> None:
    assert _resources(_run([{"name": "a"}]))["requests"]["cpu"] == "100m"


def test_existing_values_keep_their_text() -> None:
    decision = _run(
        [{"name": "a", "resources": {"requests": {"cpu": "0.2"}, "limits": {"memory": "0.25Gi"}}}]
    )
    assert _resources(decision) == {
        "requests": {"cpu": "0.2", "memory": "256Mi"},
        "limits": {"memory": "0.25Gi", "cpu": "500m"},
    }


def test_request_above_the_default_limit_raises_the_limit_with_a_warning() -> None:
    decision = _run([{"name": "a", "resources": {"requests": {"cpu": "2", "memory": "256Mi"}}}])
    assert _resources(decision)["limits"]["cpu"] == "2"
    assert decision.warnings == (
        'defaults.sizes: container "a": cpu request 2 exceeds the default limit 500m; limit raised to 2',
    )


def test_or_leaves_the_limit_unset_when_the_policy_says_so() -> None:
    decision = _run(
        [{"name": "a", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
        extra="whenRequestExceedsLimit: omitLimit",
    )
    assert _resources(decision) == {"requests": {"cpu": "2", "memory": "1Gi"}}
    assert len(decision.warnings) == 2 and "no limit set" in decision.warnings[0]


def test_default_request_is_clamped_to_a_lower_user_limit() -> None:
    # Only reachable offline (the apiserver copies limits into missing requests before webhooks).
    decision = _run([{"name": "a", "resources": {"limits": {"cpu": "50m", "memory": "64Mi"}}}])
    assert _resources(decision)["requests"] == {"cpu": "50m", "memory": "64Mi"}


@pytest.mark.parametrize("quantity", ["1000m", "1", "1.0", "1e0"])
def test_equal_quantities_in_other_notations_are_not_above_the_limit(quantity: str) -> None:
    policy = POLICY.replace("cpu: {request: 100m, limit: 500m}", "cpu: {request: 100m, limit: '1'}")
    request = fixture_request("0001")
    request["object"]["spec"]["containers"] = [{"name": "a", "resources": {"requests": {"cpu": quantity}}}]
    decision = evaluate(policy_text(policy.replace("EXTRA", "")), request)
    assert decision.object["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1"
    assert decision.warnings == ()


def test_init_containers_are_defaulted_unless_switched_off() -> None:
    init = [{"name": "setup", "resources": {}}]
    assert _resources(_run([{"name": "a"}], init=init), 0, "initContainers")["requests"]["cpu"] == "100m"
    off = _run([{"name": "a"}], extra="initContainers: false", init=init)
    assert _resources(off, 0, "initContainers") == {}


def test_ephemeral_containers_are_never_touched() -> None:
    request = fixture_request("0001")
    request["object"]["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]
    decision = evaluate(policy_text(POLICY.replace("EXTRA", "")), request)
    assert decision.object["spec"]["ephemeralContainers"] == [{"name": "debug", "image": "busybox"}]


def test_a_broken_value_is_left_alone_with_a_warning() -> None:
    decision = _run([{"name": "a", "resources": {"requests": {"cpu": "lots"}}}])
    assert _resources(decision)["requests"]["cpu"] == "lots"
    assert any("cpu left alone" in w for w in decision.warnings)


def _with_pod_resources(pod_resources: dict[str, Any], containers: list[dict[str, Any]]) -> Any:
    request = pod_with(containers)
    request["object"]["spec"]["resources"] = pod_resources
    return evaluate_twice(policy_text(POLICY.replace("EXTRA", "")), request)


def test_resources_budgeted_at_pod_level_get_no_container_defaults() -> None:
    # Pod-level requests of 150m/300Mi, as the apiserver passes them on: 100m/256Mi on each of two
    # containers would sum past them, and the apiserver would refuse the pod.
    decision = _with_pod_resources(
        {"requests": {"cpu": "150m", "memory": "300Mi"}}, [{"name": "a"}, {"name": "b"}]
    )
    assert decision.patch == ()
    assert [c.get("resources") for c in decision.object["spec"]["containers"]] == [None, None]


def test_only_the_resources_the_pod_budgets_are_left_to_it() -> None:
    # A pod-level cpu limit: its cpu request is defaulted from it; memory is still per container.
    decision = _with_pod_resources({"limits": {"cpu": "1"}}, [{"name": "a"}])
    assert _resources(decision) == {"limits": {"memory": "256Mi"}, "requests": {"memory": "256Mi"}}
    assert [c.message for c in decision.changes] == [
        'container "a": memory limit set to 256Mi',
        'container "a": memory request set to 256Mi',
    ]
