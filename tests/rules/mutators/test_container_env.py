"""containerEnv: the container's image and name as env vars, first, never overriding the container's own."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import evaluate_twice, fixture_request, pod_with, policy_text
from webhook import evaluate
from webhook.errors import PolicyError

POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: image-env}
spec:
  rules:
    - name: env
      containerEnv:
        env: {CONTAINER_IMAGE: image, CONTAINER_NAME: name}
        EXTRA
"""


def _run(containers: list[dict[str, Any]], extra: str = "", init: list[dict[str, Any]] | None = None) -> Any:
    return evaluate_twice(policy_text(POLICY.replace("EXTRA", extra)), pod_with(containers, init))


def _env(decision: Any, index: int = 0, list_name: str = "containers") -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = decision.object["spec"][list_name][index].get("env", [])
    return env


def test_each_container_gets_its_own_image_and_name_first() -> None:
    containers = [
        {
            "name": "web",
            "image": "nginx:1.27",
            "env": [{"name": "LOG", "value": "/var/log/$(CONTAINER_NAME)"}],
        },
        {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"},
    ]
    decision = _run(containers)
    assert _env(decision, 0) == [
        {"name": "CONTAINER_IMAGE", "value": "nginx:1.27"},
        {"name": "CONTAINER_NAME", "value": "web"},
        {"name": "LOG", "value": "/var/log/$(CONTAINER_NAME)"},
    ]
    assert _env(decision, 1) == [
        {"name": "CONTAINER_IMAGE", "value": "envoyproxy/envoy:v1.31.0"},
        {"name": "CONTAINER_NAME", "value": "proxy"},
    ]
    assert [(c.path, c.message) for c in decision.changes] == [
        (
            "/spec/containers/0/env/0",
            'container "web": env CONTAINER_IMAGE set to its image nginx:1.27',
        ),
        ("/spec/containers/0/env/1", 'container "web": env CONTAINER_NAME set to its name web'),
        (
            "/spec/containers/1/env/0",
            'container "proxy": env CONTAINER_IMAGE set to its image envoyproxy/envoy:v1.31.0',
        ),
        ("/spec/containers/1/env/1", 'container "proxy": env CONTAINER_NAME set to its name proxy'),
    ]
    assert decision.warnings == ()
    kubernetes_validate.validate(decision.object, "1.36.0", strict=True)


def test_a_variable_the_container_sets_is_kept_with_a_warning_when_it_differs() -> None:
    containers = [
        {
            "name": "web",
            "image": "nginx:1.27",
            "env": [
                {"name": "CONTAINER_IMAGE", "value": "nginx:1.26"},
                {"name": "CONTAINER_NAME", "value": "web"},
            ],
        }
    ]
    decision = _run(containers)
    assert decision.patch == ()
    assert decision.warnings == (
        'image-env.env: container "web": env CONTAINER_IMAGE kept as the container sets it, not set to its '
        "image nginx:1.27; rename or drop the container's own CONTAINER_IMAGE to get it",
    )


def test_a_variable_from_elsewhere_is_kept_with_a_warning() -> None:
    containers = [
        {
            "name": "web",
            "image": "nginx:1.27",
            "env": [{"name": "CONTAINER_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        }
    ]
    decision = _run(containers)
    assert _env(decision)[0] == {"name": "CONTAINER_IMAGE", "value": "nginx:1.27"}
    assert _env(decision)[1]["name"] == "CONTAINER_NAME" and "valueFrom" in _env(decision)[1]
    assert decision.warnings == (
        'image-env.env: container "web": env CONTAINER_NAME kept as the container sets it, not set to its '
        "name web; rename or drop the container's own CONTAINER_NAME to get it",
    )


def test_an_env_from_prefix_that_could_define_the_name_is_left_alone() -> None:
    containers = [
        {
            "name": "web",
            "image": "nginx:1.27",
            "envFrom": [{"prefix": "CONTAINER_", "configMapRef": {"name": "c"}}],
        }
    ]
    decision = _run(containers)
    assert decision.patch == () and decision.warnings == ()


def test_init_containers_only_when_asked() -> None:
    init = [{"name": "setup", "image": "busybox:1.36"}]
    assert _env(_run([{"name": "web", "image": "nginx"}], init=init), 0, "initContainers") == []
    decision = _run([{"name": "web", "image": "nginx"}], extra="initContainers: true", init=init)
    assert _env(decision, 0, "initContainers") == [
        {"name": "CONTAINER_IMAGE", "value": "busybox:1.36"},
        {"name": "CONTAINER_NAME", "value": "setup"},
    ]


def test_exempt_images_get_nothing() -> None:
    containers = [
        {"name": "web", "image": "nginx:1.27"},
        {"name": "proxy", "image": "docker.io/istio/proxyv2:1.22"},
    ]
    decision = _run(containers, extra="exemptImages: ['docker.io/istio/*']")
    assert len(_env(decision, 0)) == 2
    assert _env(decision, 1) == []


def test_workload_pods_get_it_and_the_template_stays_as_sent() -> None:
    decision = evaluate(policy_text(POLICY.replace("EXTRA", "")), fixture_request("0039"))
    assert decision.patch == ()
    assert [c.message for c in decision.pod_changes] == [
        'container "web": env CONTAINER_IMAGE set to its image nginx:1.27',
        'container "web": env CONTAINER_NAME set to its name web',
    ]


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            "{1ST: image}",
            "test.yaml:8: spec.rules[0].containerEnv.env.1ST: must be a valid environment variable name: "
            "letters, digits, '_', '-' and '.', not starting with a digit (got '1ST')",
        ),
        (
            "{IMAGE: tag}",
            "test.yaml:8: spec.rules[0].containerEnv.env.IMAGE: must be one of 'image', 'name' (got 'tag')",
        ),
        ("{}", "test.yaml:8: spec.rules[0].containerEnv.env: {} should be non-empty"),
    ],
    ids=["name", "field", "empty"],
)
def test_bad_variables_are_refused_at_load(env: str, error: str) -> None:
    text = POLICY.replace("EXTRA", "").replace("{CONTAINER_IMAGE: image, CONTAINER_NAME: name}", env)
    with pytest.raises(PolicyError) as raised:
        policy_text(text)
    assert str(raised.value) == error
