"""The labels mutator: defaults that never overwrite, names derived from workloads, escaped patch paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import evaluate_twice, fixture_request, policy_text, with_labels
from webhook import Decision, PolicySet, evaluate
from webhook.errors import PolicyError

NAME = "app.kubernetes.io/name"
NAME_POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: names
spec:
  rules:
    - name: default-name
      labels:
        defaults:
          app.kubernetes.io/name: {fromName: true}
"""


def labels_of(decision: Decision) -> dict[str, str]:
    labels: dict[str, str] = decision.object["metadata"].get("labels") or {}
    return labels


def test_the_key_is_escaped_in_the_patch_path() -> None:
    decision = evaluate_twice(policy_text(NAME_POLICY), fixture_request("0043"))
    assert decision.patch == (
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web-deploy"},
    )
    (change,) = decision.changes
    assert (change.policy, change.rule, change.path) == ("names", "default-name", decision.patch[0]["path"])
    assert change.message == 'label app.kubernetes.io/name set to "web-deploy" (from label app)'


def test_a_pod_without_labels_gets_a_labels_map() -> None:
    decision = evaluate_twice(policy_text(NAME_POLICY), fixture_request("0001"))
    assert decision.patch == (
        {"op": "add", "path": "/metadata/labels", "value": {NAME: "bare-no-resources"}},
    )
    assert decision.changes[0].path == "/metadata/labels/app.kubernetes.io~1name"


def _owned_by(request: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    changed = copy.deepcopy(request)
    metadata = changed["object"]["metadata"]
    metadata["labels"].pop("app", None)
    metadata["ownerReferences"] = [
        {"apiVersion": "v1", "kind": kind, "name": name, "uid": "1", "controller": True}
    ]
    return changed


@pytest.mark.parametrize(
    ("request_dict", "value", "origin"),
    [
        (fixture_request("0043"), "web-deploy", "label app"),
        (fixture_request("0049"), "db-sts", "label app"),
        (fixture_request("0055"), "once-job", "owner Job once-job"),
        (fixture_request("0017"), "gen-name", "generateName gen-name-"),
        (fixture_request("0001"), "bare-no-resources", "name bare-no-resources"),
        # Without an app label: the ReplicaSet's name minus the pod's pod-template-hash.
        (
            _owned_by(fixture_request("0043"), "ReplicaSet", "web-deploy-7f677dcdfb"),
            "web-deploy",
            "owner ReplicaSet web-deploy-7f677dcdfb",
        ),
        # A Job made by a CronJob: the schedule suffix changes every run and is dropped.
        (
            _owned_by(fixture_request("0055"), "Job", "nightly-cron-29012345"),
            "nightly-cron",
            "owner Job nightly-cron-29012345",
        ),
        (_owned_by(fixture_request("0049"), "StatefulSet", "db-sts"), "db-sts", "owner StatefulSet db-sts"),
    ],
    ids=[
        "app-label",
        "statefulset-app",
        "job-owner",
        "generate-name",
        "pod-name",
        "rs-owner",
        "cron-job",
        "sts",
    ],
)
def test_the_name_is_derived_from_the_workload(request_dict: dict[str, Any], value: str, origin: str) -> None:
    decision = evaluate_twice(policy_text(NAME_POLICY), request_dict)
    assert labels_of(decision)[NAME] == value
    assert decision.changes[0].message == f'label {NAME} set to "{value}" (from {origin})'


def test_a_workload_template_takes_the_workload_name_and_changes_only_with_mutate_templates() -> None:
    request = fixture_request("0039")
    del request["object"]["spec"]["template"]["metadata"]["labels"]["app"]
    judged_only = evaluate(policy_text(NAME_POLICY), request)
    assert judged_only.patch == ()
    stored = NAME_POLICY.replace("  rules:", "  mutateTemplates: true\n  rules:")
    decision = evaluate_twice(policy_text(stored), request)
    assert decision.patch == (
        {
            "op": "add",
            "path": "/spec/template/metadata/labels/app.kubernetes.io~1name",
            "value": "web-deploy",
        },
    )
    assert (
        decision.changes[0].message
        == 'label app.kubernetes.io/name set to "web-deploy" (from Deployment web-deploy)'
    )


def test_a_label_the_pod_has_is_never_overwritten() -> None:
    request = with_labels(fixture_request("0043"), **{NAME: "storefront"})
    decision = evaluate(policy_text(NAME_POLICY), request)
    assert decision.patch == ()
    assert decision.changes == ()


def test_literal_defaults_fill_only_what_is_missing() -> None:
    policies = policy_text(
        NAME_POLICY.replace(
            "app.kubernetes.io/name: {fromName: true}",
            "app.kubernetes.io/part-of: shop\n          team: web",
        )
    )
    request = with_labels(fixture_request("0043"), team="payments")
    decision = evaluate_twice(policies, request)
    assert decision.patch == (
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1part-of", "value": "shop"},
    )
    assert labels_of(decision)["team"] == "payments"
    assert [c.message for c in decision.changes] == ['label app.kubernetes.io/part-of set to "shop"']


def test_a_derived_value_is_made_a_valid_label_value() -> None:
    long_name = "a-very-long-statefulset-name-for-the-reporting-database-of-team-x.example"
    request = copy.deepcopy(fixture_request("0001"))
    request["object"]["metadata"]["name"] = long_name
    decision = evaluate_twice(policy_text(NAME_POLICY), request)
    # Cut to 63 characters, then trimmed so that it ends with a letter or digit.
    assert labels_of(decision)[NAME] == "a-very-long-statefulset-name-for-the-reporting-database-of-team"
    assert decision.changes[0].message.endswith(f"(from name {long_name}, shortened from {long_name!r})")

    request = with_labels(fixture_request("0043"), app="web deploy!")
    assert labels_of(evaluate_twice(policy_text(NAME_POLICY), request))[NAME] == "web-deploy"


def test_a_derived_value_with_nothing_valid_is_skipped_with_a_warning() -> None:
    request = with_labels(fixture_request("0043"), app="--")
    decision = evaluate(policy_text(NAME_POLICY), request)
    assert decision.patch == ()
    assert decision.warnings == (
        "names.default-name: label app.kubernetes.io/name not set: no valid label value in label app",
    )


def test_nothing_changes_on_update() -> None:
    decision = evaluate(policy_text(NAME_POLICY), fixture_request("0033"), explain=True)
    assert decision.patch == ()
    assert decision.skipped == ("names.default-name: operation UPDATE is not among CREATE",)


def test_a_replicaset_template_is_named_like_the_pods_it_makes() -> None:
    request = fixture_request("0041")
    del request["object"]["spec"]["template"]["metadata"]["labels"]["app"]
    decision = evaluate(policy_text(NAME_POLICY), request)
    assert decision.changes[0].message == (
        'label app.kubernetes.io/name set to "web-deploy" (from ReplicaSet web-deploy-7f677dcdfb)'
    )


def test_labels_are_defaulted_before_other_policies_select_on_them() -> None:
    # Another policy selects on a label this one defaults: it must see it in the same evaluation.
    policies = policy_text(
        """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: z-env-by-namespace
spec:
  match: {namespaces: [capture-demo]}
  rules:
    - name: env
      labels: {defaults: {app.kubernetes.io/env: test}}
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: a-test-resources
spec:
  match: {selector: {matchLabels: {app.kubernetes.io/env: test}}}
  rules:
    - name: cpu
      resources: {defaults: {cpu: {request: 100m}}}
"""
    )
    decision = evaluate_twice(policies, fixture_request("0001"))
    assert labels_of(decision)["app.kubernetes.io/env"] == "test"
    assert decision.object["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"


def test_the_shipped_policy_does_not_make_every_pod_a_test_pod(default_policies: PolicySet) -> None:
    decision = evaluate_twice(default_policies, fixture_request("0001"))
    assert labels_of(decision)[NAME] == "bare-no-resources"
    assert "app.kubernetes.io/env" not in labels_of(decision)
    assert not decision.allowed  # requests-required still judges it


@pytest.mark.parametrize(
    ("defaults", "error"),
    [
        (
            '"app.kubernetes.io/na me": x',
            "test.yaml:10: spec.rules[0].labels.defaults.app.kubernetes.io/na me: invalid label key: "
            "name 'na me' must be 1-63 characters of A-Z, a-z, 0-9, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        ),
        (
            "Example.com/name: x",
            "test.yaml:10: spec.rules[0].labels.defaults.Example.com/name: invalid label key: "
            "prefix 'Example.com' must be a lowercase DNS subdomain of at most 253 characters",
        ),
        (
            "/name: x",
            "test.yaml:10: spec.rules[0].labels.defaults./name: invalid label key: "
            "prefix before '/' must not be empty",
        ),
        (
            "team: -web",
            "test.yaml:10: spec.rules[0].labels.defaults.team: invalid label value '-web': "
            "must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        ),
        ("team: 3", "test.yaml:10: spec.rules[0].labels.defaults.team: must be a string or object (got 3)"),
        (
            "team: {fromName: false}",
            "test.yaml:10: spec.rules[0].labels.defaults.team.fromName: must be one of True (got False)",
        ),
    ],
    ids=["bad-name", "bad-prefix", "empty-prefix", "bad-value", "not-a-string", "from-name-false"],
)
def test_invalid_keys_and_values_are_load_errors_with_file_and_line(defaults: str, error: str) -> None:
    text = NAME_POLICY.replace("app.kubernetes.io/name: {fromName: true}", defaults)
    with pytest.raises(PolicyError) as caught:
        policy_text(text)
    assert [str(issue) for issue in caught.value.issues] == [error]
