"""exemptImages: written once, it skips containers by image in every rule type that walks containers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import evaluate_twice, pod_with, policy_text
from webhook import evaluate
from webhook.errors import PolicyError
from webhook.policy.schema import policy_schema
from webhook.rules.exemptions import Exempting, unwrap
from webhook.rules.mutators import MUTATORS
from webhook.rules.validators import VALIDATORS
from webhook.rules.validators import requests as requests_rule

APP = {"name": "app", "image": "registry.example.com/shop/web:2.1"}
MESH = {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.0"}
VENDOR = {"name": "agent", "image": "vendor.example.com/agent@sha256:" + "a" * 64}

RULE = """
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - name: r
      RULE
"""
# Every rule type that walks containers, with parameters that act on the bare containers above.
CONTAINER_RULES = {
    "resources": "{defaults: {memory: {request: 64Mi}}, exemptImages: IMAGES}",
    "probes": "{liveness: {}, exemptImages: IMAGES}",
    "downwardEnv": "{env: [{name: POD, fieldPath: metadata.name}], exemptImages: IMAGES}",
    "containerEnv": "{env: {IMAGE: image}, exemptImages: IMAGES}",
    "requireRequests": "{exemptImages: IMAGES}",
    "requireLimits": "{exemptImages: IMAGES}",
    "resourceBounds": "{cpu: {request: {max: 1m}}, exemptImages: IMAGES}",
    "requireProbes": "{allOf: [liveness], exemptImages: IMAGES}",
}
IMAGES = "['docker.io/istio/proxyv2:*', 'vendor.example.com/*']"


def _policies(key: str, images: str = IMAGES) -> Any:
    return policy_text(RULE.replace("RULE", f"{key}: {CONTAINER_RULES[key].replace('IMAGES', images)}"))


def _pod() -> dict[str, Any]:
    app = {**APP, "ports": [{"containerPort": 8080}], "resources": {"requests": {"cpu": "500m"}}}
    mesh = {**MESH, "ports": [{"containerPort": 15001}], "resources": {"requests": {"cpu": "500m"}}}
    vendor = {**VENDOR, "resources": {"requests": {"cpu": "500m"}}}
    return pod_with([app, mesh, vendor])


def test_the_registries_give_it_to_exactly_the_container_rules() -> None:
    rules = policy_schema()["allOf"][0]["then"]["properties"]["spec"]["properties"]["rules"]["items"]
    with_it = sorted(
        key for key in rules["properties"] if "exemptImages" in rules["properties"][key].get("properties", {})
    )
    assert with_it == sorted(CONTAINER_RULES)
    assert {m.KEY for m in (*MUTATORS, *VALIDATORS)} - set(CONTAINER_RULES) == {
        "labels",
        "tolerations",
        "preset",
        "requireLabels",
    }


@pytest.mark.parametrize(
    "key", [k for k in CONTAINER_RULES if k in {"resources", "probes", "downwardEnv", "containerEnv"}]
)
def test_mutators_leave_exempt_containers_untouched(key: str) -> None:
    request = _pod()
    decision = evaluate_twice(_policies(key), request)
    containers = decision.object["spec"]["containers"]
    assert containers[0] != request["object"]["spec"]["containers"][0], "the app container is mutated"
    assert containers[1:] == request["object"]["spec"]["containers"][1:]
    assert all(not c.path.startswith(("/spec/containers/1", "/spec/containers/2")) for c in decision.changes)


@pytest.mark.parametrize("key", ["requireRequests", "requireLimits", "resourceBounds", "requireProbes"])
def test_validators_do_not_judge_exempt_containers(key: str) -> None:
    messages = [v.message for v in evaluate(_policies(key), _pod()).violations]
    assert messages and all(m.startswith('container "app" ') for m in messages)
    everyone = [v.message for v in evaluate(_policies(key, "['other.example.com/*']"), _pod()).violations]
    assert {m.split('"')[1] for m in everyone} == {"app", "istio-proxy", "agent"}


def test_a_glob_matches_the_image_as_written() -> None:
    # No registry normalisation: "istio/proxyv2" in the pod is not "docker.io/istio/proxyv2".
    request = pod_with([{**MESH, "image": "istio/proxyv2:1.22.0"}])
    assert not evaluate(_policies("requireRequests"), request).allowed
    assert evaluate(_policies("requireRequests", "['*istio/proxyv2:*']"), request).allowed


def test_params_without_exemptions_stay_the_modules_own() -> None:
    plain = policy_text(RULE.replace("RULE", "requireRequests: {resources: [cpu]}"))
    params = plain.policies[0].rules[0].params
    assert isinstance(params, requests_rule.Params)
    exempt = _policies("requireRequests").policies[0].rules[0].params
    assert isinstance(exempt, Exempting)
    assert exempt.images == ("docker.io/istio/proxyv2:*", "vendor.example.com/*")
    assert unwrap(exempt) == requests_rule.Params(requests_rule.DEFAULT)


@pytest.mark.parametrize(
    ("images", "error"),
    [
        (
            "['*']",
            "test.yaml:8: spec.rules[0].requireRequests.exemptImages[0]: '*' exempts every container, so the "
            "rule would never act: name the images to skip, e.g. docker.io/istio/proxyv2:*",
        ),
        (
            "['nginx:1.27', '**']",
            "test.yaml:8: spec.rules[0].requireRequests.exemptImages[1]: '**' exempts every container, so "
            "the "
            "rule would never act: name the images to skip, e.g. docker.io/istio/proxyv2:*",
        ),
        (
            "['istio/proxy v2']",
            "test.yaml:8: spec.rules[0].requireRequests.exemptImages[0]: an image never contains whitespace "
            "(got 'istio/proxy v2')",
        ),
        ("[]", "test.yaml:8: spec.rules[0].requireRequests.exemptImages: [] should be non-empty"),
    ],
    ids=["star", "stars", "space", "empty"],
)
def test_bad_globs_are_refused_at_load(images: str, error: str) -> None:
    with pytest.raises(PolicyError) as raised:
        _policies("requireRequests", images)
    assert str(raised.value) == error


def test_rules_that_do_not_walk_containers_refuse_it() -> None:
    text = RULE.replace("RULE", "requireLabels: {keys: [app], exemptImages: ['x/*']}")
    with pytest.raises(PolicyError) as raised:
        policy_text(text)
    assert str(raised.value) == (
        "test.yaml:8: spec.rules[0].requireLabels.exemptImages: unknown field "
        "(expected one of: allowedValues, hint, keys, patterns)"
    )
