"""requireLabels: one message naming every missing key, allowed values, and the enforce/warn/audit actions."""

from __future__ import annotations

import pytest

from tests.conftest import fixture_request, policy_text, with_labels
from webhook import PolicySet, evaluate
from webhook.errors import PolicyError

ENV = "app.kubernetes.io/env"
NAME = "app.kubernetes.io/name"
POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: labels
spec:
  rules:
    - name: standard
      action: {action}
      requireLabels:
        keys: [app.kubernetes.io/name, app.kubernetes.io/env]
"""
MISSING_BOTH = "pod is missing labels app.kubernetes.io/name, app.kubernetes.io/env"


def policies(action: str = "enforce", extra: str = "") -> PolicySet:
    return policy_text(POLICY.replace("{action}", action) + extra)


def test_enforce_denies_naming_every_missing_key() -> None:
    decision = evaluate(policies(), fixture_request("0001"))
    assert not decision.allowed
    assert decision.denial_message() == f"labels.standard: {MISSING_BOTH}"
    assert decision.patch == ()


def test_one_missing_key_is_named_alone() -> None:
    decision = evaluate(policies(), with_labels(fixture_request("0001"), **{NAME: "web"}))
    assert decision.denial_message() == f"labels.standard: pod is missing label {ENV}"


def test_warn_admits_with_a_warning() -> None:
    decision = evaluate(policies("warn"), fixture_request("0001"))
    assert decision.allowed
    assert decision.admission_warnings() == [f"labels.standard: {MISSING_BOTH}"]
    assert decision.audit_annotations() == {}


def test_audit_admits_and_records_an_audit_annotation() -> None:
    decision = evaluate(policies("audit"), fixture_request("0001"))
    assert decision.allowed
    assert decision.admission_warnings() == []
    assert decision.audit_annotations() == {"labels.standard": MISSING_BOTH}


def test_a_labelled_pod_passes() -> None:
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "test"})
    decision = evaluate(policies(), request)
    assert decision.allowed
    assert decision.violations == ()


def test_a_workload_is_judged_by_its_pod_template() -> None:
    decision = evaluate(policies(), fixture_request("0039"))
    assert decision.denial_message() == (
        "labels.standard: Deployment web-deploy: pod template is missing labels "
        "app.kubernetes.io/name, app.kubernetes.io/env"
    )


def test_allowed_values_restrict_a_label_when_present() -> None:
    extra = "        allowedValues:\n          app.kubernetes.io/env: [test, staging, production]\n"
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "qa"})
    decision = evaluate(policies(extra=extra), request)
    assert decision.denial_message() == (
        'labels.standard: pod label app.kubernetes.io/env is "qa", not one of test, staging, production'
    )
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "staging"})
    assert evaluate(policies(extra=extra), request).allowed


def test_allowed_values_alone_do_not_require_the_label() -> None:
    text = POLICY.replace("{action}", "enforce").replace(
        "        keys: [app.kubernetes.io/name, app.kubernetes.io/env]\n",
        "        allowedValues: {team: [web, data]}\n",
    )
    assert evaluate(policy_text(text), fixture_request("0001")).allowed
    decision = evaluate(policy_text(text), with_labels(fixture_request("0001"), team="ops"))
    assert decision.denial_message() == 'labels.standard: pod label team is "ops", not one of web, data'


def test_the_hint_is_appended() -> None:
    decision = evaluate(policies(extra='        hint: "see the platform wiki"\n'), fixture_request("0001"))
    assert decision.denial_message() == f"labels.standard: {MISSING_BOTH} (see the platform wiki)"


def test_the_shipped_policy_warns_after_defaulting_the_name(default_policies: PolicySet) -> None:
    decision = evaluate(default_policies, fixture_request("0043"))
    warnings = [w for w in decision.admission_warnings() if w.startswith("standard-labels.")]
    assert warnings == [
        "standard-labels.standard-labels-present: pod is missing label app.kubernetes.io/env "
        "(label the pod template, e.g. app.kubernetes.io/env: test)"
    ]
    labelled = with_labels(fixture_request("0043"), **{ENV: "production"})
    assert not [
        w for w in evaluate(default_policies, labelled).admission_warnings() if "standard-labels" in w
    ]


@pytest.mark.parametrize(
    ("replace", "by", "error"),
    [
        (
            "keys: [app.kubernetes.io/name, app.kubernetes.io/env]",
            "keys: [app.kubernetes.io/name, app_kubernetes.io/env]",
            "test.yaml:10: spec.rules[0].requireLabels.keys[1]: invalid label key: "
            "prefix 'app_kubernetes.io' must be a lowercase DNS subdomain of at most 253 characters",
        ),
        (
            "keys: [app.kubernetes.io/name, app.kubernetes.io/env]",
            "keys: [app.kubernetes.io/name]\n        allowedValues: {app.kubernetes.io/env: [test, not ok]}",
            "test.yaml:11: spec.rules[0].requireLabels.allowedValues.app.kubernetes.io/env[1]: invalid label "
            "value 'not ok': must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and "
            "ending with a letter or digit",
        ),
    ],
    ids=["key", "allowed-value"],
)
def test_invalid_keys_and_values_are_load_errors_with_file_and_line(
    replace: str, by: str, error: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_text(POLICY.replace("{action}", "enforce").replace(replace, by))
    assert [str(issue) for issue in caught.value.issues] == [error]
