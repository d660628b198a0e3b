"""resourceBounds: ranges and the limit/request ratio, compared exactly; bad bounds refused at load."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from tests.conftest import fixture_request, pod_with, policy_text
from webhook import evaluate
from webhook.errors import PolicyError
from webhook.rules.validators.resource_bounds import suggest

POLICY = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: sizes}
spec:
  rules:
    - name: bounds
      resourceBounds: PARAMS
"""


def _messages(params: str, request: dict[str, Any]) -> list[str]:
    decision = evaluate(policy_text(POLICY.replace("PARAMS", params)), request)
    return [v.message for v in decision.violations]


def _pod(**resources: dict[str, str]) -> dict[str, Any]:
    return pod_with([{"name": "app", "image": "nginx:1.27", "resources": resources}])


@pytest.mark.parametrize("zero", ["0", "0m", "0Mi", "0.0", "0e3"])
def test_a_minimum_closes_the_zero_request_hole(zero: str) -> None:
    assert _messages("{memory: {request: {min: 64Mi}}}", _pod(requests={"memory": zero})) == [
        f'container "app" memory request {zero} is below the minimum 64Mi; '
        "set spec.containers[0].resources.requests.memory to at least 64Mi"
    ]


def test_bounds_are_inclusive_and_exact() -> None:
    params = "{cpu: {request: {min: 100m, max: '2'}, limit: {max: 4}}}"
    assert _messages(params, _pod(requests={"cpu": "0.1"}, limits={"cpu": "4000m"})) == []
    assert _messages(params, _pod(requests={"cpu": "2001m"}, limits={"cpu": "4001m"})) == [
        'container "app" cpu request 2001m is above the maximum 2; '
        "set spec.containers[0].resources.requests.cpu to at most 2",
        'container "app" cpu limit 4001m is above the maximum 4; '
        "set spec.containers[0].resources.limits.cpu to at most 4",
    ]


def test_missing_values_are_not_judged() -> None:
    # Presence is requireRequests' and requireLimits' business.
    params = "{memory: {request: {min: 64Mi}, limit: {min: 64Mi}, maxLimitRequestRatio: 2}}"
    assert _messages(params, _pod()) == []
    assert _messages(params, _pod(requests={"memory": "128Mi"})) == []


def test_ratio_names_both_ways_to_comply() -> None:
    params = "{memory: {maxLimitRequestRatio: 2}}"
    assert _messages(params, _pod(requests={"memory": "256Mi"}, limits={"memory": "512Mi"})) == []
    assert _messages(params, _pod(requests={"memory": "100Mi"}, limits={"memory": "1Gi"})) == [
        'container "app" memory limit 1Gi is 10.2 times its request 100Mi, above maxLimitRequestRatio 2; '
        "set spec.containers[0].resources.requests.memory to at least 512Mi "
        "or spec.containers[0].resources.limits.memory to at most 200Mi"
    ]


def test_a_zero_request_under_a_limit_breaks_any_ratio() -> None:
    assert _messages(
        "{cpu: {maxLimitRequestRatio: 4}}", _pod(requests={"cpu": "0"}, limits={"cpu": "1"})
    ) == [
        'container "app" cpu request is 0, below its limit 1 by more than maxLimitRequestRatio 4; '
        "set spec.containers[0].resources.requests.cpu to at least 250m"
    ]


def test_ratio_one_means_requests_equal_limits() -> None:
    params = "{cpu: {maxLimitRequestRatio: 1}}"
    assert _messages(params, _pod(requests={"cpu": "0.5"}, limits={"cpu": "500m"})) == []
    assert _messages(params, _pod(requests={"cpu": "250m"}, limits={"cpu": "500m"})) == [
        'container "app" cpu limit 500m is 2 times its request 250m, above maxLimitRequestRatio 1; '
        "set spec.containers[0].resources.requests.cpu to at least 500m "
        "or spec.containers[0].resources.limits.cpu to at most 250m"
    ]


def test_init_containers_hint_and_workloads() -> None:
    request = pod_with(
        [{"name": "app", "image": "nginx", "resources": {"requests": {"memory": "64Mi"}}}],
        init=[{"name": "setup", "image": "busybox", "resources": {"requests": {"memory": "1Mi"}}}],
    )
    assert (
        _messages("{memory: {request: {min: 8Mi}}, initContainers: false, hint: 'see wiki'}", request) == []
    )
    assert _messages("{memory: {request: {min: 8Mi}}, hint: 'see wiki'}", request) == [
        'init container "setup" memory request 1Mi is below the minimum 8Mi; '
        "set spec.initContainers[0].resources.requests.memory to at least 8Mi (see wiki)"
    ]
    # web-deploy requests memory 64Mi and limits it to 128Mi.
    decision = evaluate(
        policy_text(POLICY.replace("PARAMS", "{memory: {limit: {max: 100Mi}}}")), fixture_request("0039")
    )
    assert decision.denial_message() == (
        'sizes.bounds: Deployment web-deploy: pod template container "web" memory limit 128Mi is above the '
        "maximum 100Mi; set spec.template.spec.containers[0].resources.limits.memory to at most 100Mi"
    )


def test_exempt_images_are_not_judged() -> None:
    request = pod_with(
        [
            {"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "0"}}},
            {
                "name": "proxy",
                "image": "docker.io/istio/proxyv2:1.22",
                "resources": {"requests": {"cpu": "0"}},
            },
        ]
    )
    params = "{cpu: {request: {min: 10m}}, exemptImages: ['docker.io/istio/*']}"
    assert _messages(params, request) == [
        'container "app" cpu request 0 is below the minimum 10m; '
        "set spec.containers[0].resources.requests.cpu to at least 10m"
    ]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            "{}",
            "spec.rules[0].resourceBounds: names no resource to bound: give cpu, memory or ephemeral-storage",
        ),
        (
            "{memory: {request: {min: 1Gi, max: 512Mi}}}",
            "spec.rules[0].resourceBounds.memory.request.max: max 512Mi is below min 1Gi",
        ),
        (
            "{cpu: {limit: {min: 2, max: 1500m}}}",
            "spec.rules[0].resourceBounds.cpu.limit.max: max 1500m is below min 2",
        ),
        (
            "{memory: {maxLimitRequestRatio: 0.5}}",
            "spec.rules[0].resourceBounds.memory.maxLimitRequestRatio: must be at least 1: a limit is never "
            "below its request (got 0.5)",
        ),
        (
            "{memory: {request: {min: 64Megs}}}",
            "spec.rules[0].resourceBounds.memory.request.min: must be a quantity such as 100m or 256Mi "
            "(got '64Megs')",
        ),
        (
            "{cpu: {maxLimitRequestRatio: two}}",
            "spec.rules[0].resourceBounds.cpu.maxLimitRequestRatio: must be a quantity such as 100m or 256Mi "
            "(got 'two')",
        ),
        (
            "{memory: {request: {min: 2Gi}, limit: {max: 1Gi}}}",
            "spec.rules[0].resourceBounds.memory.request.min: min 2Gi is above the limit's max 1Gi: no "
            "container with a limit could comply, as a request is never above its limit",
        ),
        (
            "{memory: {request: {max: 100Mi}, limit: {min: 1Gi}, maxLimitRequestRatio: 2}}",
            "spec.rules[0].resourceBounds.memory.limit.min: min 1Gi is more than maxLimitRequestRatio 2 "
            "times "
            "the request's max 100Mi: no container setting both could comply",
        ),
    ],
    ids=[
        "no-resource",
        "request-max-below-min",
        "limit-max-below-min",
        "ratio-below-1",
        "bad-quantity",
        "bad-ratio",
        "request-min-above-limit-max",
        "ratio-unreachable",
    ],
)
def test_bad_bounds_are_refused_at_load_with_file_and_line(params: str, error: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_text(POLICY.replace("PARAMS", params))
    assert str(raised.value) == f"test.yaml:8: {error}"


def test_errors_point_at_the_line_of_the_bad_value() -> None:
    text = POLICY.replace(
        "PARAMS", "\n        memory:\n          request:\n            min: 1Gi\n            max: 1Mi"
    )
    with pytest.raises(PolicyError) as raised:
        policy_text(text)
    assert (
        str(raised.value)
        == "test.yaml:12: spec.rules[0].resourceBounds.memory.request.max: max 1Mi is below min 1Gi"
    )


@pytest.mark.parametrize(
    ("value", "resource", "up", "text"),
    [
        (Fraction(256 * 2**20), "memory", True, "256Mi"),
        (Fraction(10**9), "memory", True, "1G"),
        (Fraction(1000, 3), "memory", True, "334"),
        (Fraction(1000, 3), "memory", False, "333"),
        (Fraction(1, 4), "cpu", True, "250m"),
        (Fraction(2), "cpu", False, "2"),
        (Fraction(1, 3), "cpu", True, "334m"),
        (Fraction(1, 3000), "cpu", False, "0"),
    ],
)
def test_suggestions_are_exact_or_rounded_the_safe_way(
    value: Fraction, resource: str, up: bool, text: str
) -> None:
    assert suggest(value, resource, round_up=up) == text
