"""requireLimits: each container named with the limits it lacks; a pod-level limit counts for all."""

from __future__ import annotations

from typing import Any

from tests.conftest import fixture_request, pod_with, policy_text
from webhook import evaluate

POLICY = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: limits}
spec:
  rules:
    - name: required
      requireLimits: PARAMS
"""


def _messages(params: str, request: dict[str, Any]) -> list[str]:
    decision = evaluate(policy_text(POLICY.replace("PARAMS", params)), request)
    return [v.message for v in decision.violations]


def _container(name: str, **resources: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "image": "nginx:1.27", "resources": resources}


def test_memory_is_required_by_default_and_cpu_is_not() -> None:
    request = pod_with([_container("app", limits={"cpu": "1"}), _container("ok", limits={"memory": "1Gi"})])
    assert _messages("{}", request) == [
        'container "app" is missing memory limit; set spec.containers[0].resources.limits '
        "(or spec.resources.limits for the whole pod)"
    ]


def test_every_missing_resource_is_named_once() -> None:
    request = pod_with([_container("app")])
    assert _messages("{resources: [cpu, memory, ephemeral-storage]}", request) == [
        'container "app" is missing cpu and memory and ephemeral-storage limits; '
        "set spec.containers[0].resources.limits"
    ]


def test_a_pod_level_limit_satisfies_its_resource_for_every_container() -> None:
    request = pod_with([_container("app"), _container("sidecar")], init=[_container("setup")])
    request["object"]["spec"]["resources"] = {"limits": {"memory": "1Gi"}}
    assert _messages("{resources: [memory]}", request) == []
    assert _messages("{resources: [cpu, memory]}", request) == [
        'init container "setup" is missing cpu limit; set spec.initContainers[0].resources.limits '
        "(or spec.resources.limits for the whole pod)",
        'container "app" is missing cpu limit; set spec.containers[0].resources.limits '
        "(or spec.resources.limits for the whole pod)",
        'container "sidecar" is missing cpu limit; set spec.containers[1].resources.limits '
        "(or spec.resources.limits for the whole pod)",
    ]


def test_ephemeral_storage_has_no_pod_level_limit() -> None:
    request = pod_with([_container("app")])
    # Kubernetes refuses ephemeral-storage in spec.resources: a value there is no limit for it.
    request["object"]["spec"]["resources"] = {"limits": {"ephemeral-storage": "1Gi", "memory": "1Gi"}}
    assert _messages("{resources: [ephemeral-storage]}", request) == [
        'container "app" is missing ephemeral-storage limit; set spec.containers[0].resources.limits'
    ]


def test_init_containers_are_judged_unless_switched_off() -> None:
    request = pod_with([_container("app", limits={"memory": "1Gi"})], init=[_container("setup")])
    assert _messages("{}", request) == [
        'init container "setup" is missing memory limit; set spec.initContainers[0].resources.limits '
        "(or spec.resources.limits for the whole pod)"
    ]
    assert _messages("{initContainers: false}", request) == []


def test_hint_and_exempt_images() -> None:
    request = pod_with([_container("app"), {"name": "proxy", "image": "docker.io/istio/proxyv2:1.22.0"}])
    params = "{hint: 'see wiki/limits', exemptImages: ['docker.io/istio/proxyv2:*']}"
    assert _messages(params, request) == [
        'container "app" is missing memory limit; set spec.containers[0].resources.limits '
        "(or spec.resources.limits for the whole pod) (see wiki/limits)"
    ]


def test_a_workload_is_judged_by_its_pod_template() -> None:
    # Its container limits memory, not cpu.
    decision = evaluate(policy_text(POLICY.replace("PARAMS", "{resources: [cpu]}")), fixture_request("0039"))
    assert decision.denial_message() == (
        'limits.required: Deployment web-deploy: pod template container "web" is missing cpu limit; '
        "set spec.template.spec.containers[0].resources.limits "
        "(or spec.template.spec.resources.limits for the whole pod)"
    )


def test_limits_only_pod_passes() -> None:
    assert _messages("{resources: [cpu, memory]}", fixture_request("0006")) == []
