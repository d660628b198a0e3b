"""Opt-out annotations: granted by the policy, to the requesters it names, and to nobody else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import fixture_request, policy_text
from webhook import evaluate
from webhook.errors import PolicyError

REQUIRED = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: requests-required}
spec:
  allowOptOut:
    groups: [platform-admins]
    serviceAccounts: [ci/deployer]
    users: ["break-glass-*"]
  rules:
    - name: cpu-and-memory
      requireRequests: {resources: [cpu, memory]}
"""
OPT_OUT = {"podgate.io/opt-out": "true"}


def _pod_by(username: str, groups: list[str], annotations: dict[str, str] | None) -> dict[str, Any]:
    request = fixture_request("0002")  # a bare pod: requests-required denies it
    request["userInfo"] = {"username": username, "groups": groups}
    if annotations is not None:
        request["object"]["metadata"]["annotations"] = annotations
    return request


@pytest.mark.parametrize(
    ("username", "groups"),
    [
        ("carol", ["platform-admins"]),
        ("system:serviceaccount:ci:deployer", ["system:serviceaccounts"]),
        ("break-glass-2", []),
    ],
)
def test_named_requesters_may_opt_out(username: str, groups: list[str]) -> None:
    decision = evaluate(policy_text(REQUIRED), _pod_by(username, groups, OPT_OUT), explain=True)
    assert decision.allowed and decision.warnings == ()
    assert any("opted out by annotation podgate.io/opt-out" in reason for reason in decision.skipped)


def test_a_tenant_annotating_their_pod_is_still_judged_and_told_why() -> None:
    decision = evaluate(policy_text(REQUIRED), _pod_by("tenant", ["system:authenticated"], OPT_OUT))
    assert not decision.allowed
    assert decision.warnings == (
        "requests-required: annotation podgate.io/opt-out ignored: tenant may not opt out of this policy",
    )


@pytest.mark.parametrize("value", ["false", "True", "", "yes"])
def test_only_the_value_true_opts_out(value: str) -> None:
    request = _pod_by("carol", ["platform-admins"], {"podgate.io/opt-out": value})
    assert not evaluate(policy_text(REQUIRED), request).allowed


def test_a_policy_without_allow_opt_out_ignores_the_annotation() -> None:
    without = policy_text(REQUIRED.split("  allowOptOut:")[0] + "  rules:" + REQUIRED.split("  rules:")[1])
    assert without.policies[0].opt_out is None
    decision = evaluate(without, _pod_by("carol", ["platform-admins"], OPT_OUT))
    assert not decision.allowed and decision.warnings == ()


def test_a_workload_is_judged_with_the_identity_that_creates_its_pods() -> None:
    # An admin may opt a pod out, but a Deployment's pods are created by the ReplicaSet controller,
    # which the policy does not name: the Deployment is judged as those pods will be.
    request = fixture_request("0040")
    request["userInfo"] = {"username": "carol", "groups": ["platform-admins"]}
    template = request["object"]["spec"]["template"]
    template["metadata"]["annotations"] = OPT_OUT
    for container in template["spec"]["containers"]:
        container["resources"] = {}
    decision = evaluate(policy_text(REQUIRED), request)
    assert not decision.allowed
    assert "replicaset-controller may not opt out of this policy" in decision.warnings[0]


def test_the_annotation_is_configurable_and_checked() -> None:
    custom = REQUIRED.replace(
        "  allowOptOut:\n", "  allowOptOut:\n    annotation: example.com/skip-requests\n"
    )
    request = _pod_by("carol", ["platform-admins"], {"example.com/skip-requests": "true"})
    assert evaluate(policy_text(custom), request).allowed
    assert not evaluate(policy_text(custom), _pod_by("carol", ["platform-admins"], OPT_OUT)).allowed

    broken = REQUIRED.replace("  allowOptOut:\n", "  allowOptOut:\n    annotation: not a key\n")
    with pytest.raises(
        PolicyError, match=r"test.yaml:6: spec.allowOptOut.annotation: must be a valid annotation"
    ):
        policy_text(broken)


def test_an_opt_out_must_name_who_may_use_it() -> None:
    nobody = (
        REQUIRED.split("  allowOptOut:")[0] + "  allowOptOut: {}\n  rules:" + REQUIRED.split("  rules:")[1]
    )
    with pytest.raises(PolicyError, match=r"test.yaml:5: spec.allowOptOut"):
        policy_text(nobody)
