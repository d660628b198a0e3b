"""Properties over generated pods: the patch applies, requests never exceed limits, a second pass is empty."""

import copy
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import POLICIES, fixture_request, policy_text
from webhook import PolicySet, evaluate, load_policies
from webhook.kube.quantity import parse_quantity

CPU = ["1m", "50m", "100m", "0.1", "250m", ".5", "1", "1000m", "2", "1e0"]
MEMORY = ["1Mi", "64Mi", "128M", "256Mi", "0.25Gi", "1Gi", "268435456", "1e9", "2G"]
RESOURCES = {"cpu": CPU, "memory": MEMORY}


@st.composite
def resource_pairs(draw: st.DrawFn, name: str) -> tuple[str | None, str | None]:
    """A user's (request, limit) for one resource; the apiserver rejects request > limit, so do we."""
    values = RESOURCES[name]
    request = draw(st.none() | st.sampled_from(values))
    limit = draw(st.none() | st.sampled_from(values))
    if request and limit and parse_quantity(request) > parse_quantity(limit):
        request, limit = limit, request
    if limit and not request:
        request = limit  # what the apiserver does before any webhook
    return request, limit


@st.composite
def containers(draw: st.DrawFn, prefix: str) -> list[dict[str, Any]]:
    result = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        resources: dict[str, dict[str, str]] = {}
        for name in RESOURCES:
            request, limit = draw(resource_pairs(name))
            if request:
                resources.setdefault("requests", {})[name] = request
            if limit:
                resources.setdefault("limits", {})[name] = limit
        container: dict[str, Any] = {"name": f"{prefix}{index}", "image": "busybox", "resources": resources}
        if draw(st.booleans()):
            container["ports"] = [{"name": draw(st.sampled_from(["http", "web"])), "containerPort": 8080}]
        result.append(container)
    return result


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    request = fixture_request("0001")
    pod = request["object"]
    pod["spec"]["containers"] = draw(containers("c"))
    if draw(st.booleans()):
        pod["spec"]["initContainers"] = draw(containers("init"))
    labels = draw(
        st.dictionaries(st.sampled_from(["app.kubernetes.io/env", "tier"]), st.sampled_from(["test", "prod"]))
    )
    pod["metadata"]["labels"] = labels
    namespace = draw(st.sampled_from(["capture-demo", "test", "team-test"]))
    request["namespace"] = pod["metadata"]["namespace"] = namespace
    return request


@st.composite
def resource_policies(draw: st.DrawFn) -> PolicySet:
    lines = []
    for name in RESOURCES:
        request, limit = draw(resource_pairs(name))
        if request is None and limit is None:
            continue
        fields = ", ".join(f"{k}: '{v}'" for k, v in (("request", request), ("limit", limit)) if v)
        lines.append(f"          {name}: {{{fields}}}")
    if not lines:
        lines.append("          cpu: {request: 100m}")
    mode = draw(st.sampled_from(["raiseLimit", "omitLimit"]))
    return policy_text(
        f"""
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {{name: generated}}
spec:
  rules:
    - name: sizes
      resources:
        whenRequestExceedsLimit: {mode}
        defaults:
"""
        + "\n".join(lines)
        + "\n"
    )


def _check(policies: PolicySet, request: dict[str, Any]) -> None:
    original = copy.deepcopy(request["object"])
    decision = evaluate(policies, request)
    assert request["object"] == original, "the object as received was modified"
    patched = jsonpatch.apply_patch(copy.deepcopy(original), list(decision.patch))
    assert patched == decision.object
    for list_name in ("initContainers", "containers"):
        for container in patched["spec"].get(list_name, []):
            resources = container.get("resources", {})
            for name, limit in resources.get("limits", {}).items():
                request_value = resources.get("requests", {}).get(name)
                if request_value is not None:
                    assert parse_quantity(request_value) <= parse_quantity(limit), (container["name"], name)
    again = copy.deepcopy(request)
    again["object"] = patched
    assert evaluate(policies, again).patch == ()


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(pods(), resource_policies())
def test_generated_policies_on_generated_pods(request: dict[str, Any], policies: PolicySet) -> None:
    _check(policies, request)


DEFAULTS = load_policies(POLICIES)


@SETTINGS
@given(pods())
def test_shipped_policies_on_generated_pods(request: dict[str, Any]) -> None:
    _check(DEFAULTS, request)
