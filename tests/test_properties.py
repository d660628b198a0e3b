"""Properties over generated pods: the patch applies, requests never exceed limits, a second pass is empty,
and a policy set that loads never defaults a pod into a denial by its own validators."""

import copy
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.conftest import POLICIES, fixture_request, pod_with, policy_text
from webhook import PolicySet, evaluate, load_policies
from webhook.engine.workloads import apiserver_pod_defaults
from webhook.errors import PolicyError
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


# Issue 17: bounds, ratios, required limits and probes, container env, label patterns and image
# exemptions. Any policy set that loads must never default a pod into a denial: a pod its validators
# admit as written is admitted once mutated, and as the apiserver stores it (limits copied into the
# requests the patch left unset). Values include "0": a request of 0 is what a minimum exists for.
IMAGES = ["registry.example.com/shop/web:2.1", "docker.io/istio/proxyv2:1.22.0", "busybox:1.36"]
EXEMPT = ["docker.io/istio/*", "busybox:*"]
# Few values, some equal in other spellings: the relations between them (equal, double, ...) matter more
# than their number, and bounds are compared exactly.
BOUNDED = {
    "cpu": ["0", "50m", "0.1", "100m", "250m", "1", "1000m"],
    "memory": ["0Mi", "64Mi", "128Mi", "0.25Gi", "256Mi", "1Gi"],
}
RATIOS = ["1", "1.5", "2", "4", "10"]


@st.composite
def bounded_pairs(draw: st.DrawFn, name: str) -> tuple[str | None, str | None]:
    values = BOUNDED[name]
    request = draw(st.none() | st.sampled_from(values))
    limit = draw(st.none() | st.sampled_from(values))
    if request and limit and parse_quantity(request) > parse_quantity(limit):
        request, limit = limit, request
    if limit and not request:
        request = limit
    return request, limit


@st.composite
def judged_pods(draw: st.DrawFn, most: int = 3, names: tuple[str, ...] = tuple(BOUNDED)) -> dict[str, Any]:
    """A pod of at most `most` containers and as many init containers, with or without values of `names`."""
    request = fixture_request("0001")
    pod = request["object"]
    for list_name, count in (
        ("containers", draw(st.integers(1, most))),
        ("initContainers", draw(st.integers(0, most - 1))),
    ):
        containers = []
        for index in range(count):
            resources: dict[str, dict[str, str]] = {}
            for name in names:
                req, lim = draw(bounded_pairs(name))
                if req:
                    resources.setdefault("requests", {})[name] = req
                if lim:
                    resources.setdefault("limits", {})[name] = lim
            container: dict[str, Any] = {
                "name": f"{list_name[0]}{index}",
                "image": draw(st.sampled_from(IMAGES)),
            }
            container["resources"] = resources
            ports = draw(st.lists(st.sampled_from(["http", "web", "metrics"]), unique=True, max_size=3))
            container["ports"] = [{"name": n, "containerPort": 8080 + i} for i, n in enumerate(ports)]
            if draw(st.booleans()):
                container["readinessProbe"] = draw(
                    st.sampled_from([{"exec": {"command": ["true"]}}, {"grpc": {"port": 9}}])
                )
            containers.append(container)
        if containers:
            pod["spec"][list_name] = containers
    labels = draw(
        st.dictionaries(
            st.sampled_from(["tier", "app.kubernetes.io/env"]), st.sampled_from(["web", "Web", "test"])
        )
    )
    pod["metadata"]["labels"] = labels
    return request


def _yaml_quantity(value: str) -> str:
    return f"'{value}'"


def _files(rules: list[str]) -> str:
    """Each rule in a policy of its own, all matching every pod: the overlap podgate must judge."""
    return "---\n".join(
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\n"
        f"metadata: {{name: p{index}}}\nspec:\n  rules:\n    - name: r\n      {rule}\n"
        for index, rule in enumerate(rules)
    )


def _exempt(draw: st.DrawFn) -> str:
    return f", exemptImages: ['{draw(st.sampled_from(EXEMPT))}']" if draw(st.integers(0, 3)) == 0 else ""


@st.composite
def resource_policies_and_judges(draw: st.DrawFn, names: tuple[str, ...] = tuple(BOUNDED)) -> str:
    """Resource defaults and the bounds, ratios and required limits that judge them."""
    defaults = []
    for name in names:
        request, limit = draw(bounded_pairs(name))
        fields = ", ".join(
            f"{k}: {_yaml_quantity(v)}" for k, v in (("request", request), ("limit", limit)) if v
        )
        if fields:
            defaults.append(f"{name}: {{{fields}}}")
    mode = draw(st.sampled_from(["raiseLimit", "omitLimit"]))
    fallback = f"{names[0]}: {{request: '{BOUNDED[names[0]][1]}'}}"
    rules = [
        f"resources: {{defaults: {{{', '.join(defaults) or fallback}}}, "
        f"whenRequestExceedsLimit: {mode}{_exempt(draw)}}}"
    ]
    bounds = []
    for name in names:
        parts = []
        for field in ("request", "limit"):
            # Mostly unbounded: a pod that the bounds admit as written is the case that matters.
            size = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
            ends = sorted(
                draw(st.lists(st.sampled_from(BOUNDED[name]), min_size=size, max_size=size)),
                key=lambda v: parse_quantity(v).value,
            )
            if len(ends) == 2:
                parts.append(f"{field}: {{min: {_yaml_quantity(ends[0])}, max: {_yaml_quantity(ends[1])}}}")
            elif ends:
                parts.append(
                    f"{field}: {{{draw(st.sampled_from(['min', 'max']))}: {_yaml_quantity(ends[0])}}}"
                )
        if draw(st.booleans()):
            parts.append(f"maxLimitRequestRatio: {_yaml_quantity(draw(st.sampled_from(RATIOS)))}")
        if parts:
            bounds.append(f"{name}: {{{', '.join(parts)}}}")
    if bounds:
        rules.append(f"resourceBounds: {{{', '.join(bounds)}{_exempt(draw)}}}")
    if draw(st.integers(0, 3)) == 0:
        required = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        rules.append(f"requireLimits: {{resources: [{', '.join(required)}]{_exempt(draw)}}}")
    return _files(rules)


@st.composite
def container_policies_and_judges(draw: st.DrawFn) -> str:
    """Probes (by port name), container env and label defaults, and the rules that judge them."""
    rules = []
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(["web", "metrics", "http"]), min_size=1, unique=True))
        rules.append(
            f"probes: {{liveness: {{}}, readiness: {{}}, portNames: [{', '.join(names)}]{_exempt(draw)}}}"
        )
    if draw(st.booleans()):
        kinds = draw(st.lists(st.sampled_from(["readiness", "liveness"]), min_size=1, unique=True))
        handlers = draw(
            st.lists(st.sampled_from(["httpGet", "tcpSocket", "exec", "grpc"]), min_size=1, unique=True)
        )
        which = draw(st.sampled_from(["allOf", "anyOf"]))
        rules.append(
            f"requireProbes: {{{which}: [{', '.join(kinds)}], "
            f"handlers: [{', '.join(handlers)}]{_exempt(draw)}}}"
        )
    if draw(st.booleans()):
        rules.append(
            f"containerEnv: {{env: {{CONTAINER_IMAGE: image, CONTAINER_NAME: name}}{_exempt(draw)}}}"
        )
    if draw(st.booleans()):
        rules.append(f"labels: {{defaults: {{tier: {draw(st.sampled_from(['web', 'Web']))}}}}}")
    if draw(st.booleans()):
        rules.append("requireLabels: {patterns: {tier: '[a-z]+'}}")
    return _files(rules or ["requireLabels: {keys: [tier]}"])


def _stored(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the apiserver stores it after the patch: it copies limits into missing requests."""
    stored = copy.deepcopy(pod)
    apiserver_pod_defaults(stored["spec"])
    return stored


def _loaded(text: str) -> PolicySet:
    """The policy set, or the example is dropped: sets that do not load are the loader's tests' business."""
    try:
        return policy_text(text)
    except PolicyError:
        assume(False)
        raise


def _never_defaults_into_a_denial(policies: PolicySet, request: dict[str, Any]) -> None:
    _check(policies, request)
    as_written = evaluate(policies, request, validating=True)
    mutated = evaluate(policies, request)
    stored = evaluate(policies, {**request, "object": _stored(mutated.object)}, validating=True)
    event(f"admitted as written: {as_written.allowed}")
    if as_written.allowed:
        assert mutated.allowed, mutated.violations
        assert stored.allowed, stored.violations


JUDGED = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def _one_container_pods(name: str) -> list[dict[str, Any]]:
    """Every shape of one container the defaults act on: nothing, or only a request, or only a limit, of
    every value, and an image that an exemption may name or not. (Set both, and nothing is defaulted.)"""
    shapes: list[dict[str, Any]] = [{}]
    for value in BOUNDED[name]:
        shapes.append({"requests": {name: value}})
        shapes.append(
            {"requests": {name: value}, "limits": {name: value}}
        )  # a limit, copied by the apiserver
    return [
        pod_with([{"name": "app", "image": image, "resources": copy.deepcopy(shape)}])
        for shape in shapes
        for image in (IMAGES[0], IMAGES[2])
    ]


@JUDGED
@given(
    st.sampled_from(tuple(BOUNDED)).flatmap(
        lambda name: st.tuples(st.just(name), resource_policies_and_judges((name,)))
    )
)
def test_resource_defaults_that_load_never_lead_to_a_denial(case: tuple[str, str]) -> None:
    name, text = case
    policies = _loaded(text)
    for request in _one_container_pods(name):
        _never_defaults_into_a_denial(policies, request)


@JUDGED
@given(judged_pods(), container_policies_and_judges())
def test_probe_env_and_label_defaults_that_load_never_lead_to_a_denial(
    request: dict[str, Any], text: str
) -> None:
    _never_defaults_into_a_denial(_loaded(text), request)
