from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import FIXTURE_FILES, evaluate_twice, fixture_request, policy_text
from webhook import PolicySet, evaluate
from webhook.errors import PolicyError

POD_CREATES = [f.name[:4] for f in FIXTURE_FILES if "_mutate_CREATE_Pod_" in f.name]
PROTECTED = {"0037"}  # kube-system: no default policy reaches it
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"

POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: nodes}
spec:
  rules:
    - name: failover
      tolerations:
        add:
          - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 45}
          - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 45}
          - {key: dedicated, operator: Equal, value: batch, effect: NoSchedule}
        EXTRA
"""


def _run(tolerations: list[dict[str, Any]] | None, extra: str = "") -> Any:
    request = fixture_request("0001")
    if tolerations is None:
        del request["object"]["spec"]["tolerations"]
    else:
        request["object"]["spec"]["tolerations"] = tolerations
    return evaluate_twice(policy_text(POLICY.replace("EXTRA", extra)), request)


def _apiserver(key: str, seconds: int = 300) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


def _seconds(tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        t["key"]: t.get("tolerationSeconds") for t in tolerations if t.get("key") in (NOT_READY, UNREACHABLE)
    }


@pytest.mark.parametrize("prefix", [p for p in POD_CREATES if p not in PROTECTED])
def test_every_captured_pod_leaves_a_dead_node_after_the_policys_seconds(
    default_policies: PolicySet, prefix: str
) -> None:
    request = fixture_request(prefix)
    assert _seconds(request["object"]["spec"]["tolerations"]) == {NOT_READY: 300, UNREACHABLE: 300}
    decision = evaluate_twice(default_policies, request)
    kubernetes_validate.validate(decision.object, "1.36.0", strict=True)
    tolerations = decision.object["spec"]["tolerations"]
    assert tolerations == [_apiserver(NOT_READY, 30), _apiserver(UNREACHABLE, 30)]
    assert [c.path for c in decision.changes if c.policy == "node-failure-tolerations"] == [
        "/spec/tolerations/0/tolerationSeconds",
        "/spec/tolerations/1/tolerationSeconds",
    ]


def test_kube_system_pods_keep_the_apiservers_tolerations(default_policies: PolicySet) -> None:
    decision = evaluate(default_policies, fixture_request("0037"))
    assert _seconds(decision.object["spec"]["tolerations"]) == {NOT_READY: 300, UNREACHABLE: 300}


def test_the_apiservers_300_seconds_are_replaced_and_explained() -> None:
    decision = _run([_apiserver(NOT_READY), _apiserver(UNREACHABLE)])
    assert decision.object["spec"]["tolerations"] == [
        _apiserver(NOT_READY, 45),
        _apiserver(UNREACHABLE, 45),
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
    ]
    assert [(c.path, c.message) for c in decision.changes] == [
        (
            "/spec/tolerations/0/tolerationSeconds",
            "toleration node.kubernetes.io/not-ready: tolerationSeconds 300 (the apiserver's default) "
            "replaced by 45",
        ),
        (
            "/spec/tolerations/1/tolerationSeconds",
            "toleration node.kubernetes.io/unreachable: tolerationSeconds 300 (the apiserver's default) "
            "replaced by 45",
        ),
        ("/spec/tolerations/2", "toleration dedicated Equal batch NoSchedule added"),
    ]


def test_a_users_own_toleration_seconds_are_kept() -> None:
    decision = _run([_apiserver(NOT_READY, 120), _apiserver(UNREACHABLE)])
    assert _seconds(decision.object["spec"]["tolerations"]) == {NOT_READY: 120, UNREACHABLE: 45}


def test_a_toleration_without_seconds_means_forever_and_is_kept() -> None:
    forever = {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}
    decision = _run([forever, _apiserver(UNREACHABLE)])
    assert decision.object["spec"]["tolerations"][0] == forever


def test_another_apiserver_default_is_recognised_when_configured() -> None:
    tolerations = [_apiserver(NOT_READY, 200), _apiserver(UNREACHABLE, 300)]
    decision = _run(tolerations, extra="apiserverDefaultSeconds: 200")
    assert _seconds(decision.object["spec"]["tolerations"]) == {NOT_READY: 45, UNREACHABLE: 300}


def test_missing_tolerations_are_added_to_a_pod_without_any() -> None:
    decision = _run(None)
    assert decision.object["spec"]["tolerations"] == [
        _apiserver(NOT_READY, 45),
        _apiserver(UNREACHABLE, 45),
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
    ]


def test_an_equivalent_toleration_is_not_duplicated() -> None:
    # No operator means Equal to Kubernetes: the same toleration as the policy's.
    own = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    decision = _run([_apiserver(NOT_READY), _apiserver(UNREACHABLE), own])
    assert decision.object["spec"]["tolerations"][2:] == [own]


def test_a_toleration_differing_in_value_or_effect_is_not_equivalent() -> None:
    other = [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]
    decision = _run([_apiserver(NOT_READY), _apiserver(UNREACHABLE), *other])
    assert decision.object["spec"]["tolerations"][-1]["value"] == "batch"


def test_a_broader_toleration_is_not_shortened_by_a_timed_one() -> None:
    # The taint manager uses the shortest matching tolerationSeconds: adding 45 s beside
    # "tolerate everything forever" would evict the pod after 45 s.
    everything = {"operator": "Exists"}
    decision = _run([everything])
    assert decision.object["spec"]["tolerations"] == [everything]
    assert decision.patch == ()


def test_a_key_wide_toleration_covers_every_value_of_that_key() -> None:
    own = {"key": "dedicated", "operator": "Exists"}
    decision = _run([_apiserver(NOT_READY), _apiserver(UNREACHABLE), own])
    assert decision.object["spec"]["tolerations"][2:] == [own]


def test_workload_templates_get_the_tolerations_when_the_policy_mutates_templates() -> None:
    request = fixture_request("0039")  # a Deployment: the apiserver adds no tolerations to templates
    text = POLICY.replace("EXTRA", "").replace("spec:\n  rules:", "spec:\n  mutateTemplates: true\n  rules:")
    decision = evaluate_twice(policy_text(text), request)
    assert _seconds(decision.object["spec"]["template"]["spec"]["tolerations"]) == {
        NOT_READY: 45,
        UNREACHABLE: 45,
    }


def _load_error(toleration: str) -> str:
    text = (
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
        f"    - name: r\n      tolerations:\n        add:\n          - {toleration}\n"
    )
    with pytest.raises(PolicyError) as caught:
        policy_text(text, "tolerations.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("toleration", "error"),
    [
        (
            "{key: a, operator: Exists, value: b}",
            "spec.rules[0].tolerations.add[0].value: must be empty when operator is Exists",
        ),
        (
            "{key: a, effect: NoSchedule, tolerationSeconds: 10}",
            "spec.rules[0].tolerations.add[0].tolerationSeconds: "
            "only a NoExecute toleration takes tolerationSeconds",
        ),
        (
            "{key: a, tolerationSeconds: 10}",
            "spec.rules[0].tolerations.add[0].tolerationSeconds: "
            "only a NoExecute toleration takes tolerationSeconds",
        ),
        (
            "{key: a, effect: NoEvict}",
            "spec.rules[0].tolerations.add[0].effect: "
            "must be one of '', 'NoSchedule', 'PreferNoSchedule', 'NoExecute' (got 'NoEvict')",
        ),
        (
            "{value: b}",
            "spec.rules[0].tolerations.add[0].operator: "
            "must be Exists when key is empty (an empty key matches every taint)",
        ),
        (
            "{key: 'bad key'}",
            "spec.rules[0].tolerations.add[0].key: name 'bad key' must be 1-63 characters of "
            "A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit",
        ),
        (
            "{key: Example.com/x}",
            "spec.rules[0].tolerations.add[0].key: "
            "prefix 'Example.com' must be a lowercase DNS subdomain of at most 253 characters",
        ),
        (
            "{key: a, value: 'two words'}",
            "spec.rules[0].tolerations.add[0].value: "
            "must be a label value: at most 63 letters, digits, '-', '_' or '.'",
        ),
        (
            # Found by tests/test_fuzz_policies.py: it loaded, then every pod met the fail mode.
            "{key: a, effect: NoExecute, tolerationSeconds: 9223372036854775808}",
            "spec.rules[0].tolerations.add[0].tolerationSeconds: "
            "9223372036854775808 is greater than the maximum of 9223372036854775807",
        ),
    ],
    ids=[
        "int64",
        "exists-value",
        "seconds-noschedule",
        "seconds-no-effect",
        "effect",
        "empty-key",
        "key",
        "prefix",
        "value",
    ],
)
def test_invalid_tolerations_are_rejected_at_load_with_file_and_line(toleration: str, error: str) -> None:
    assert _load_error(toleration) == f"tolerations.yaml:9: {error}"


def test_equivalent_tolerations_in_one_policy_are_rejected() -> None:
    text = (
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
        "    - name: r\n      tolerations:\n        add:\n"
        "          - {key: a, operator: Equal, value: b}\n"
        "          - {key: a, value: b}\n"
    )
    with pytest.raises(PolicyError) as caught:
        policy_text(text, "tolerations.yaml")
    assert str(caught.value) == (
        "tolerations.yaml:10: spec.rules[0].tolerations.add[1]: equivalent to add[0] (a Equal b any effect)"
    )
