import copy
import json
from pathlib import Path

import pytest

from tests.conftest import (
    FIXTURE_FILES,
    POLICIES,
    evaluate_twice,
    fixture_request,
    fixture_review,
    policy_text,
    with_labels,
)
from webhook import PolicySet, evaluate, load_policies
from webhook.errors import ReviewError
from webhook.server.review import parse_review

RESOURCES_ONLY = POLICIES / "resources.yaml"


@pytest.mark.parametrize("file", FIXTURE_FILES, ids=lambda f: f.name[:4])
def test_every_fixture_patch_applies_and_is_reinvocation_safe(
    file: Path, default_policies: PolicySet
) -> None:
    evaluate_twice(default_policies, fixture_request(file.name[:4]))


def test_multi_container_pod_is_denied_naming_the_container() -> None:
    decision = evaluate(load_policies(RESOURCES_ONLY), fixture_request("0011"))
    assert not decision.allowed
    assert decision.denial_message() == (
        'requests-required.cpu-and-memory: container "sidecar-logger" is missing cpu and memory requests; '
        "set spec.containers[1].resources.requests "
        "(to what the container uses under normal load, e.g. cpu: 100m, memory: 256Mi; "
        "`kubectl top pod` shows it)"
    )


def test_a_test_labelled_pod_gets_the_seed_defaults() -> None:
    request = with_labels(fixture_request("0001"), **{"app.kubernetes.io/env": "test"})
    decision = evaluate(load_policies(RESOURCES_ONLY), request)
    assert decision.allowed
    resources = decision.object["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "100m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    assert {(c.policy, c.rule) for c in decision.changes} == {("test-defaults", "guaranteed-resources")}


def test_a_test_namespace_gets_the_defaults_without_a_label() -> None:
    request = fixture_request("0001")
    request["namespace"] = request["object"]["metadata"]["namespace"] = "payments-test"
    assert evaluate(load_policies(RESOURCES_ONLY), request).object["spec"]["containers"][0]["resources"][
        "limits"
    ]


def test_limits_only_pod_is_admitted_unchanged() -> None:
    decision = evaluate(load_policies(RESOURCES_ONLY), fixture_request("0005"))
    assert decision.allowed and decision.patch == () and decision.changes == ()


def test_bare_pod_outside_test_is_denied() -> None:
    decision = evaluate(load_policies(RESOURCES_ONLY), fixture_request("0002"))
    assert not decision.allowed
    assert 'container "app" is missing cpu and memory requests' in decision.denial_message()


def test_kube_system_is_left_alone_unless_named() -> None:
    request = fixture_request("0037")
    decision = evaluate(load_policies(RESOURCES_ONLY), request, explain=True)
    assert decision.allowed and decision.patch == ()
    assert any("namespace kube-system is protected" in reason for reason in decision.skipped)
    named = policy_text(
        """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: system-requests}
spec:
  match: {namespaces: [kube-system]}
  rules:
    - name: required
      requireRequests: {}
"""
    )
    assert not evaluate(named, request).allowed


def test_update_with_unchanged_pod_spec_is_not_judged() -> None:
    # `kubectl label` of a pod without requests arrives as UPDATE: it must never be blocked.
    for number in ("0029", "0030", "0031", "0032", "0035", "0036"):
        decision = evaluate(load_policies(RESOURCES_ONLY), fixture_request(number))
        assert decision.allowed and decision.patch == (), number
        assert decision.skipped == ("UPDATE leaves the pod template unchanged",)
    # 0033/0034 change the image (mutable in a pod spec): judged again, compliant, admitted.
    for number in ("0033", "0034"):
        decision = evaluate(load_policies(RESOURCES_ONLY), fixture_request(number))
        assert decision.allowed and "UPDATE leaves the pod template unchanged" not in decision.skipped


def test_excluded_users_and_service_accounts() -> None:
    policies = policy_text(
        """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: strict}
spec:
  exclude:
    users: ["adm*"]
    serviceAccounts: ["kube-system/replicaset-controller"]
  rules:
    - name: required
      requireRequests: {}
"""
    )
    assert evaluate(policies, fixture_request("0002")).allowed  # user admin
    assert evaluate(policies, fixture_request("0044")).allowed  # replicaset-controller
    assert evaluate(policies, fixture_request("0056")).allowed is False  # job-controller


def test_actions_warn_and_audit_admit() -> None:
    base = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: soft}
spec:
  rules:
    - name: required
      action: ACTION
      requireRequests: {}
"""
    warn = evaluate(policy_text(base.replace("ACTION", "warn")), fixture_request("0002"))
    assert warn.allowed and warn.admission_warnings() == [
        'soft.required: container "app" is missing cpu and memory requests; '
        "set spec.containers[0].resources.requests"
    ]
    audit = evaluate(policy_text(base.replace("ACTION", "audit")), fixture_request("0002"))
    assert audit.allowed and audit.admission_warnings() == []
    assert list(audit.audit_annotations()) == ["soft.required"]


def test_non_pod_kinds_and_delete_are_out_of_scope(default_policies: PolicySet) -> None:
    request = fixture_request("0001")
    request["kind"] = {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert evaluate(default_policies, request).skipped == ("kind ConfigMap has no pod template",)
    request = fixture_request("0001")
    request["operation"] = "DELETE"
    assert evaluate(default_policies, request).allowed


def test_the_object_as_received_is_never_modified(default_policies: PolicySet) -> None:
    request = with_labels(fixture_request("0011"), **{"app.kubernetes.io/env": "test"})
    before = copy.deepcopy(request)
    evaluate(default_policies, request)
    assert request == before


def test_subresources_are_never_judged(default_policies: PolicySet) -> None:
    # `kubectl debug` adds an ephemeral container through pods/ephemeralcontainers, an UPDATE.
    request = fixture_request("0030")
    request["subResource"] = "ephemeralcontainers"
    request["object"]["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox"}]
    decision = evaluate(default_policies, request)
    assert decision.allowed and decision.patch == ()
    assert decision.skipped == ("subresource ephemeralcontainers is never judged",)


def test_a_malformed_request_is_a_review_error(default_policies: PolicySet) -> None:
    with pytest.raises(ReviewError, match=r"request\.uid is missing"):
        evaluate(default_policies, {"kind": {"kind": "Pod"}})


def test_the_validating_phase_judges_a_pod_as_received(default_policies: PolicySet) -> None:
    # A test pod without requests is compliant once podgate's defaults are applied...
    request = with_labels(fixture_request("0002"), **{"app.kubernetes.io/env": "test"})
    assert evaluate(default_policies, request).allowed
    # ...but if the mutating webhook was skipped (it fails open), the pod arriving at the validating
    # webhook has none, and that pod is what would run: refused, not admitted on defaults it never got.
    skipped = evaluate(default_policies, request, validating=True)
    assert not skipped.allowed and skipped.patch == ()
    assert "is missing cpu and memory requests" in skipped.denial_message()
    # The same pod after podgate's mutation passes.
    mutated = {**request, "object": evaluate(default_policies, request).object}
    assert evaluate(default_policies, mutated, validating=True).allowed


def test_the_validating_phase_still_judges_a_workload_as_its_mutated_pods(
    default_policies: PolicySet,
) -> None:
    # A Deployment's pods are mutated when its controller creates them, so the defaults count.
    request = fixture_request("0040")
    request["namespace"] = request["object"]["metadata"]["namespace"] = "test-apps"
    for container in request["object"]["spec"]["template"]["spec"]["containers"]:
        container["resources"] = {}
    assert evaluate(default_policies, request, validating=True).allowed


def test_an_update_too_deep_to_compare_is_the_senders_error(default_policies: PolicySet) -> None:
    # Found by fuzzing: old and new templates are compared before anything is copied, and `==` on two
    # objects a thousand levels deep (orjson reads up to 1,024) raised RecursionError: the fail mode.
    review = fixture_review("0029")
    review["request"]["object"]["spec"]["containers"][0]["args"] = "DEEP"
    review["request"]["oldObject"] = review["request"]["object"]
    body = json.dumps(review).replace('"DEEP"', "[" * 1012 + "]" * 1012)
    with pytest.raises(ReviewError, match="nested too deeply to compare"):
        evaluate(default_policies, parse_review(body).raw_request)
