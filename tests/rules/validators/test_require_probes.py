"""requireProbes: allOf / anyOf, which handlers count, and which init containers may have probes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import fixture_request, pod_with, policy_text
from webhook import evaluate
from webhook.errors import PolicyError

POLICY = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: health}
spec:
  rules:
    - name: probes
      requireProbes: PARAMS
"""
HTTP = {"httpGet": {"path": "/", "port": 8080}}
EXEC = {"exec": {"command": ["true"]}}


def _messages(params: str, request: dict[str, Any]) -> list[str]:
    decision = evaluate(policy_text(POLICY.replace("PARAMS", params)), request)
    return [v.message for v in decision.violations]


def _container(name: str, **probes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "image": "nginx:1.27", **probes}


def test_all_of_names_every_missing_probe() -> None:
    # Named in a fixed order (readiness, liveness, startup), whatever the order of the policy's list.
    ok = _container("ok", readinessProbe=HTTP, livenessProbe=HTTP)
    request = pod_with([_container("web", readinessProbe=HTTP), ok])
    assert _messages("{allOf: [liveness, readiness, startup]}", request) == [
        'container "web" is missing liveness and startup probes; '
        "set livenessProbe and startupProbe in spec.containers[0]",
        'container "ok" is missing startup probe; set startupProbe in spec.containers[1]',
    ]


def test_any_of_is_satisfied_by_one() -> None:
    request = pod_with([_container("web", livenessProbe=EXEC), _container("worker")])
    assert _messages("{anyOf: [readiness, liveness]}", request) == [
        'container "worker" has no readiness or liveness probe; '
        "set readinessProbe or livenessProbe in spec.containers[1]"
    ]


def test_a_probe_with_a_handler_that_does_not_count_is_named() -> None:
    request = pod_with([_container("web", readinessProbe=HTTP, livenessProbe=EXEC)])
    assert _messages("{allOf: [readiness, liveness], handlers: [httpGet, tcpSocket, grpc]}", request) == [
        'container "web" is missing liveness probe; set livenessProbe in spec.containers[0] '
        "(only a probe using httpGet, tcpSocket or grpc counts: its livenessProbe uses exec)"
    ]
    assert _messages("{allOf: [readiness, liveness]}", request) == []


def test_plain_init_containers_are_never_judged_and_sidecars_on_request() -> None:
    sidecar = {**_container("proxy"), "restartPolicy": "Always"}
    request = pod_with([_container("web", readinessProbe=HTTP)], init=[_container("setup"), sidecar])
    assert _messages("{anyOf: [readiness]}", request) == []
    assert _messages("{anyOf: [readiness], nativeSidecars: true}", request) == [
        'init container "proxy" has no readiness probe; set readinessProbe in spec.initContainers[1]'
    ]


def test_hint_exempt_images_and_workloads() -> None:
    params = "{allOf: [liveness], hint: 'see wiki/probes', exemptImages: ['nginx:*']}"
    request = pod_with([_container("web"), {"name": "job", "image": "busybox:1.36"}])
    assert _messages(params, request) == [
        'container "job" is missing liveness probe; set livenessProbe in spec.containers[1] (see wiki/probes)'
    ]
    decision = evaluate(policy_text(POLICY.replace("PARAMS", "{allOf: [liveness]}")), fixture_request("0039"))
    assert decision.denial_message() == (
        'health.probes: Deployment web-deploy: pod template container "web" is missing liveness probe; '
        "set livenessProbe in spec.template.spec.containers[0]"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            "{handlers: [exec]}",
            "must have exactly one of allOf (every probe listed) and anyOf (at least one); got neither",
        ),
        (
            "{allOf: [liveness], anyOf: [readiness]}",
            "must have exactly one of allOf (every probe listed) and anyOf (at least one); got both",
        ),
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_all_of_and_any_of(params: str, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        policy_text(POLICY.replace("PARAMS", params))
    assert str(error.value) == f"test.yaml:8: spec.rules[0].requireProbes: {message}"


def test_unknown_kinds_and_handlers_are_schema_errors() -> None:
    with pytest.raises(PolicyError) as error:
        policy_text(POLICY.replace("PARAMS", "{allOf: [liveliness], handlers: [http]}"))
    assert str(error.value) == (
        "test.yaml:8: spec.rules[0].requireProbes.allOf[0]: must be one of 'readiness', 'liveness', "
        "'startup' (got 'liveliness')\n"
        "test.yaml:8: spec.rules[0].requireProbes.handlers[0]: must be one of 'httpGet', 'tcpSocket', "
        "'grpc', 'exec' (got 'http')"
    )
