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
