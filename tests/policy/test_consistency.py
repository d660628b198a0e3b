"""Defaults and validators agree: a policy set whose defaults its own rules would deny does not load."""

from __future__ import annotations

import pytest

from tests.conftest import POLICIES, policy_text
from webhook import load_policies
from webhook.errors import PolicyError
from webhook.policy.loader import parse_sources

DEFAULTS = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: defaults}
spec:
  MATCH
  rules:
    - name: sizes
      resources:
        defaults:
          DEFAULTS
        whenRequestExceedsLimit: WHEN
"""
JUDGE = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: judge}
spec:
  MATCH
  rules:
    - name: rule
      RULE
"""


def _defaults(defaults: str, when: str = "omitLimit", match: str = "description: all") -> str:
    return DEFAULTS.replace("DEFAULTS", defaults).replace("WHEN", when).replace("MATCH", match)


def _judge(rule: str, match: str = "description: all") -> str:
    return JUDGE.replace("RULE", rule).replace("MATCH", match)


def _errors(*sources: tuple[str, str]) -> list[str]:
    try:
        parse_sources(list(sources))
    except PolicyError as error:
        return [str(issue) for issue in error.issues]
    return []


def _pair(defaults: str, rule: str, when: str = "omitLimit") -> list[str]:
    return _errors(("d.yaml", _defaults(defaults, when)), ("j.yaml", _judge(rule)))


def test_the_shipped_policies_agree() -> None:
    load_policies(POLICIES)


def test_a_default_beyond_a_bound_is_refused_naming_both_rules() -> None:
    assert _pair(
        "memory: {request: 256Mi, limit: 1Gi}", "resourceBounds: {memory: {limit: {max: 512Mi}}}"
    ) == [
        "d.yaml:10: spec.rules[0].resources.defaults.memory.limit: default memory limit 1Gi is above the "
        "limit "
        "maximum 512Mi of judge.rule (j.yaml:7), which would deny every container given it"
    ]
    assert _pair("cpu: {request: 5m}", "resourceBounds: {cpu: {request: {min: 10m}}}") == [
        "d.yaml:10: spec.rules[0].resources.defaults.cpu.request: default cpu request 5m is below the "
        "request "
        "minimum 10m of judge.rule (j.yaml:7), which would deny every container given it"
    ]


def test_a_default_limit_alone_is_also_the_request() -> None:
    # The apiserver copies a limit into a missing request after the webhook (checked on kube-apiserver 1.36).
    assert _pair("memory: {limit: 32Mi}", "resourceBounds: {memory: {request: {min: 64Mi}}}") == [
        "d.yaml:10: spec.rules[0].resources.defaults.memory.limit: default memory limit 32Mi (and the "
        "request "
        "the apiserver copies from it) is below the request minimum 64Mi of judge.rule (j.yaml:7), which "
        "would deny every container given it"
    ]


def test_defaults_further_apart_than_the_ratio_are_refused() -> None:
    errors = _pair(
        "memory: {request: 128Mi, limit: 1Gi}",
        "resourceBounds: {memory: {request: {min: 1Gi}, maxLimitRequestRatio: 2}}",
    )
    assert errors == [
        "d.yaml:10: spec.rules[0].resources.defaults.memory: default memory limit 1Gi and request 128Mi are "
        "further apart than maxLimitRequestRatio 2 of judge.rule (j.yaml:7), which would deny every "
        "container "
        "given both",
        "d.yaml:10: spec.rules[0].resources.defaults.memory.request: default memory request 128Mi is below "
        "the "
        "request minimum 1Gi of judge.rule (j.yaml:7), which would deny every container given it",
    ]


def test_a_default_limit_needs_a_request_minimum_under_a_ratio() -> None:
    # A container requesting 10Mi and no limit is admitted without podgate; with the default limit
    # 256Mi it would be 25 times its request. A request min makes such a request wrong by itself.
    assert _pair(
        "memory: {request: 256Mi, limit: 256Mi}", "resourceBounds: {memory: {maxLimitRequestRatio: 2}}"
    ) == [
        "d.yaml:10: spec.rules[0].resources.defaults.memory.limit: default memory limit 256Mi would put a "
        "container that requests less than 128Mi memory and sets no limit above maxLimitRequestRatio 2 of "
        "judge.rule (j.yaml:7): give that rule a memory request min of at least 128Mi, so such requests are "
        "refused for themselves, or drop the default limit"
    ]
    bounded = "resourceBounds: {memory: {request: {min: 128Mi}, maxLimitRequestRatio: 2}}"
    assert _pair("memory: {request: 256Mi, limit: 256Mi}", bounded) == []


def test_required_limits_in_the_same_policy_make_partial_containers_moot() -> None:
    # Guaranteed QoS: limits required and requests equal to them. A container without a limit is
    # denied with or without the default, so only the defaults' own values matter.
    guaranteed = (
        "requireLimits: {resources: [cpu, memory]}\n"
        "    - name: equal\n"
        "      resourceBounds: {cpu: {maxLimitRequestRatio: 1}, memory: {maxLimitRequestRatio: 1}}"
    )
    assert (
        _pair(
            "cpu: {request: 100m, limit: 100m}\n          memory: {request: 256Mi, limit: 256Mi}", guaranteed
        )
        == []
    )
    assert _pair("memory: {request: 128Mi, limit: 256Mi}", guaranteed) == [
        "d.yaml:10: spec.rules[0].resources.defaults.memory: default memory limit 256Mi and request 128Mi "
        "are "
        "further apart than maxLimitRequestRatio 1 of judge.equal (j.yaml:9), which would deny every "
        "container given both"
    ]


def test_raise_limit_needs_a_request_maximum_under_a_limit_maximum() -> None:
    bound = "resourceBounds: {memory: {limit: {max: 2Gi}}}"
    assert _pair("memory: {request: 256Mi, limit: 256Mi}", bound, when="raiseLimit") == [
        "d.yaml:11: spec.rules[0].resources.whenRequestExceedsLimit: raiseLimit would give a container "
        "requesting more than 2Gi memory a limit equal to its request, above the limit maximum 2Gi of "
        "judge.rule (j.yaml:7): give that rule a memory request max of at most 2Gi, or use omitLimit"
    ]
    assert _pair("memory: {request: 256Mi, limit: 256Mi}", bound, when="omitLimit") == []
    capped = "resourceBounds: {memory: {request: {max: 2Gi}, limit: {max: 2Gi}}}"
    assert _pair("memory: {request: 256Mi, limit: 256Mi}", capped, when="raiseLimit") == []


def test_a_required_limit_must_be_defaulted_with_its_resource() -> None:
    assert _pair(
        "memory: {request: 256Mi}\n          cpu: {request: 100m}", "requireLimits: {resources: [memory]}"
    ) == [
        "d.yaml:10: spec.rules[0].resources.defaults.memory: gives memory no default limit, so a container "
        "that relies on these defaults is still denied by judge.rule (j.yaml:7), which requires a memory "
        "limit: add a default limit"
    ]
    assert _pair("memory: {request: 256Mi, limit: 512Mi}", "requireLimits: {resources: [memory]}") == []


def test_rules_in_one_policy_always_meet() -> None:
    text = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: one}
spec:
  match: {namespaces: [shop]}
  rules:
    - name: sizes
      resources: {defaults: {memory: {request: 1Gi}}}
    - name: bounds
      resourceBounds: {memory: {request: {max: 512Mi}}}
"""
    assert _errors(("one.yaml", text)) == [
        "one.yaml:8: spec.rules[0].resources.defaults.memory.request: default memory request 1Gi is above "
        "the request maximum 512Mi of one.bounds (one.yaml:9), which would deny every container given it"
    ]


@pytest.mark.parametrize(
    ("defaults_match", "judge_match"),
    [
        ("match: {namespaces: [test, test-*]}", "match: {namespaces: [prod, prod-*]}"),
        ("match: {namespaces: [team-a]}", "match: {namespaces: ['*-prod']}"),
        ("match: {selector: {matchLabels: {env: test}}}", "match: {selector: {matchLabels: {env: prod}}}"),
        (
            "match: {selector: {matchLabels: {env: test}}}",
            "match: {selector: {matchExpressions: [{key: env, operator: NotIn, values: [test, dev]}]}}",
        ),
        (
            "match: {selector: {matchLabels: {env: test}}}",
            "match: {selector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}",
        ),
        ("match: {namespaces: [test-*]}", "exclude: {namespaces: [test-*]}"),
        (
            "match: {any: [{namespaces: [test]}, {namespaces: [staging], selector: {matchLabels: {env: "
            "test}}}]}",
            "match: {namespaces: [prod]}",
        ),
    ],
    ids=["namespaces", "glob-tail", "labels", "notin", "doesnotexist", "excluded", "any"],
)
def test_rules_that_never_meet_are_not_compared(defaults_match: str, judge_match: str) -> None:
    defaults = _defaults("memory: {request: 1Gi}", match=defaults_match)
    judge = _judge("resourceBounds: {memory: {request: {max: 512Mi}}}", match=judge_match)
    assert _errors(("d.yaml", defaults), ("j.yaml", judge)) == []


@pytest.mark.parametrize(
    ("defaults_match", "judge_match"),
    [
        ("match: {namespaces: ['*-test']}", "match: {namespaces: ['team-*']}"),  # team-x-test is both
        ("match: {namespaces: [shop]}", "description: every namespace"),
        ("match: {selector: {matchLabels: {env: test}}}", "match: {namespaces: [shop]}"),
        (
            "match: {any: [{namespaces: [test]}, {selector: {matchLabels: {env: test}}}]}",
            "match: {namespaces: [prod]}",  # a prod pod labelled env=test gets the test defaults
        ),
    ],
    ids=["globs", "everywhere", "labels-and-namespace", "any"],
)
def test_rules_that_may_meet_are_compared(defaults_match: str, judge_match: str) -> None:
    defaults = _defaults("memory: {request: 1Gi}", match=defaults_match)
    judge = _judge("resourceBounds: {memory: {request: {max: 512Mi}}}", match=judge_match)
    assert len(_errors(("d.yaml", defaults), ("j.yaml", judge))) == 1


def test_conflicts_come_with_every_other_load_error_and_the_right_rule_index() -> None:
    text = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: one}
spec:
  rules:
    - name: broken
      resourceBounds: {cpu: {request: {min: 2, max: 1}}}
    - name: sizes
      resources: {defaults: {memory: {request: 1Gi}}}
    - name: bounds
      resourceBounds: {memory: {request: {max: 512Mi}}}
"""
    assert _errors(("one.yaml", text)) == [
        "one.yaml:7: spec.rules[0].resourceBounds.cpu.request.max: max 1 is below min 2",
        "one.yaml:9: spec.rules[1].resources.defaults.memory.request: default memory request 1Gi is above "
        "the request maximum 512Mi of one.bounds (one.yaml:10), which would deny every container given it",
    ]


def test_policy_text_helper_sees_it_too() -> None:
    with pytest.raises(PolicyError):
        policy_text(
            _defaults("memory: {request: 1Gi}")
            + "---\n"
            + _judge("resourceBounds: {memory: {request: {max: 1Mi}}}")
        )


LABELS = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: labelled}
spec:
  match: {selector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}}
  rules:
    - name: defaults
      labels: {defaults: {tier: LITERAL, app.kubernetes.io/name: {fromName: true}}}
"""


@pytest.mark.parametrize(
    ("literal", "rule", "error"),
    [
        (
            "Backend",
            "requireLabels: {patterns: {tier: '[a-z]+'}}",
            'l.yaml:8: spec.rules[0].labels.defaults.tier: default value "Backend" is not a full match of '
            "[a-z]+, which judge.rule (j.yaml:7) requires, so every pod given it would be denied",
        ),
        (
            "cache",
            "requireLabels: {allowedValues: {tier: [web, db]}}",
            'l.yaml:8: spec.rules[0].labels.defaults.tier: default value "cache" is not one of web, db, '
            "which "
            "judge.rule (j.yaml:7) allows, so every pod given it would be denied",
        ),
    ],
    ids=["pattern", "allowed-values"],
)
def test_a_literal_label_default_the_label_rules_refuse_is_refused(
    literal: str, rule: str, error: str
) -> None:
    # The judge selects tier=web pods only, but the default is what gives pods a tier: selectors
    # cannot keep a labels rule apart from the rules that read labels.
    judge = _judge(rule, match="match: {selector: {matchExpressions: [{key: tier, operator: Exists}]}}")
    assert _errors(("l.yaml", LABELS.replace("LITERAL", literal)), ("j.yaml", judge)) == [error]


def test_label_defaults_that_comply_or_never_meet_the_rule_load() -> None:
    judge = _judge("requireLabels: {patterns: {tier: '[a-z]+', app.kubernetes.io/name: '[0-9]+'}}")
    # fromName values are known per pod only, and are not checked.
    assert _errors(("l.yaml", LABELS.replace("LITERAL", "backend")), ("j.yaml", judge)) == []
    apart = _judge("requireLabels: {patterns: {tier: '[0-9]+'}}", match="match: {namespaces: [prod]}")
    elsewhere = LABELS.replace("LITERAL", "web").replace(
        "  match: {selector", "  match: {namespaces: [test], selector"
    )
    assert _errors(("l.yaml", elsewhere), ("j.yaml", apart)) == []
