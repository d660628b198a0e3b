"""requireLabels: one message naming every missing key, allowed values, and the enforce/warn/audit actions."""

from __future__ import annotations

import pytest

from tests.conftest import fixture_request, policy_text, with_labels
from webhook import PolicySet, evaluate
from webhook.errors import PolicyError
from webhook.rules.validators.labels import nested_repetition

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


def test_the_shipped_policy_audits_after_defaulting_the_name(default_policies: PolicySet) -> None:
    # Audited, not warned: most manifests lack the env label, and a warning on nearly every apply is noise.
    decision = evaluate(default_policies, fixture_request("0043"))
    assert not [w for w in decision.admission_warnings() if w.startswith("standard-labels.")]
    assert decision.audit_annotations()["standard-labels.standard-labels-present"] == (
        "pod is missing label app.kubernetes.io/env "
        "(label the pod template, e.g. app.kubernetes.io/env: test)"
    )
    labelled = with_labels(fixture_request("0043"), **{ENV: "production"})
    assert (
        "standard-labels.standard-labels-present"
        not in evaluate(default_policies, labelled).audit_annotations()
    )


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
        (
            "keys: [app.kubernetes.io/name, app.kubernetes.io/env]",
            "keys: [app.kubernetes.io/name]\n        patterns: {app.kubernetes.io/version: 'v[0-9+'}",
            "test.yaml:11: spec.rules[0].requireLabels.patterns.app.kubernetes.io/version: invalid regular "
            "expression 'v[0-9+': unterminated character set at position 1",
        ),
        (
            "keys: [app.kubernetes.io/name, app.kubernetes.io/env]",
            "keys: [app.kubernetes.io/name]\n        patterns: {'-bad': '.*'}",
            "test.yaml:11: spec.rules[0].requireLabels.patterns.-bad: invalid label key: name '-bad' must be "
            "1-63 characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit",
        ),
        (
            "keys: [app.kubernetes.io/name, app.kubernetes.io/env]",
            "keys: [app.kubernetes.io/name]\n        patterns: {team: '([a-z]+-?)+'}",
            "test.yaml:11: spec.rules[0].requireLabels.patterns.team: '([a-z]+-?)+' repeats a group that "
            "itself repeats, which can take exponential time on a value a pod's author crafts: write it "
            "without the nesting (([a-z]+-)* as [a-z-]*)",
        ),
    ],
    ids=["key", "allowed-value", "pattern", "pattern-key", "pattern-nested-repetition"],
)
def test_invalid_keys_and_values_are_load_errors_with_file_and_line(
    replace: str, by: str, error: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_text(POLICY.replace("{action}", "enforce").replace(replace, by))
    assert [str(issue) for issue in caught.value.issues] == [error]


VERSION = "app.kubernetes.io/version"
PATTERNS = "        patterns:\n          app.kubernetes.io/version: 'v?[0-9]+\\.[0-9]+\\.[0-9]+'\n"


@pytest.mark.parametrize("value", ["1.2.3", "v10.0.1"])
def test_a_value_matching_its_pattern_in_full_passes(value: str) -> None:
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "test", VERSION: value})
    assert evaluate(policies(extra=PATTERNS), request).allowed


@pytest.mark.parametrize("value", ["latest", "1.2.3-rc1", "release-1.2.3", "1.2"])
def test_a_pattern_must_match_the_whole_value(value: str) -> None:
    # re.search would find 1.2.3 inside "1.2.3-rc1" and "release-1.2.3": podgate matches the whole value.
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "test", VERSION: value})
    decision = evaluate(policies(extra=PATTERNS), request)
    assert decision.denial_message() == (
        f'labels.standard: pod label {VERSION} is "{value}", not a full match of v?[0-9]+\\.[0-9]+\\.[0-9]+'
    )


def test_a_pattern_alone_does_not_require_the_label() -> None:
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "test"})
    assert evaluate(policies(extra=PATTERNS), request).allowed


def test_a_value_too_long_for_a_label_never_reaches_the_pattern() -> None:
    # The mutating phase sees objects before the apiserver validates them: bound the regex's input.
    request = with_labels(fixture_request("0001"), **{NAME: "web", ENV: "test", VERSION: "1" * 64})
    extra = "        patterns: {app.kubernetes.io/version: '[0-9]+'}\n"
    assert not evaluate(policies(extra=extra), request).allowed


@pytest.mark.parametrize(
    ("pattern", "nested"),
    [
        ("([a-z]+)+", True),
        ("(\\w+\\s?)*", True),
        ("(a|b+)*", True),
        ("(a{1,3})+", True),
        ("(a{2})*", False),  # a fixed count matches one way only
        ("[a-z0-9]([-a-z0-9]*[a-z0-9])?", False),
        ("v?[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.]+)?", False),
    ],
)
def test_nested_repetitions_are_found(pattern: str, nested: bool) -> None:
    assert nested_repetition(pattern) is nested
