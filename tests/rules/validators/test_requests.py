from tests.conftest import fixture_request, policy_text
from webhook import evaluate

POLICY = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: rr}
spec:
  rules:
    - name: required
      requireRequests: PARAMS
"""


def _messages(params: str, prefix: str) -> list[str]:
    decision = evaluate(policy_text(POLICY.replace("PARAMS", params)), fixture_request(prefix))
    return [v.message for v in decision.violations]


def test_names_each_container_and_what_it_lacks() -> None:
    assert _messages("{}", "0012") == [
        'container "sidecar-logger" is missing cpu and memory requests; '
        "set spec.containers[1].resources.requests"
    ]


def test_configured_resources_only() -> None:
    assert _messages("{resources: [memory]}", "0004") == []  # requests-only pod
    assert _messages("{resources: [ephemeral-storage]}", "0004") == [
        'container "app" is missing ephemeral-storage request; set spec.containers[0].resources.requests'
    ]


def test_init_containers_are_judged_unless_switched_off() -> None:
    judged = _messages("{}", "0010")
    assert (
        judged[0].startswith('init container "') and "spec.initContainers[0].resources.requests" in judged[0]
    )
    assert not any(m.startswith("init container") for m in _messages("{initContainers: false}", "0010"))


def test_hint_is_appended() -> None:
    assert _messages("{hint: 'see wiki/requests'}", "0002")[0].endswith("(see wiki/requests)")


def test_compliant_pods_pass() -> None:
    assert _messages("{}", "0006") == []  # limits-only: the apiserver copied limits into requests


def _pod_level(pod_resources: dict[str, object], params: str = "{}") -> list[str]:
    request = fixture_request("0002")  # a bare pod: no requests on its container
    request["object"]["spec"]["resources"] = pod_resources
    decision = evaluate(policy_text(POLICY.replace("PARAMS", params)), request)
    return [v.message for v in decision.violations]


def test_pod_level_requests_count_for_every_container() -> None:
    # What the scheduler reserves: the pod-level request replaces the containers' sum.
    assert _pod_level({"requests": {"cpu": "150m", "memory": "300Mi"}}) == []
    # A pod-level limit alone: the apiserver defaults the pod-level request from it.
    assert _pod_level({"limits": {"cpu": "1", "memory": "1Gi"}}) == []
    assert _pod_level({"requests": {"cpu": "150m"}}) == [
        'container "app" is missing memory request; set spec.containers[0].resources.requests'
    ]
    # Pods cannot budget ephemeral storage as a whole: it stays a per-container request.
    assert _pod_level(
        {"requests": {"cpu": "1", "ephemeral-storage": "1Gi"}}, "{resources: [ephemeral-storage]}"
    ) == ['container "app" is missing ephemeral-storage request; set spec.containers[0].resources.requests']
