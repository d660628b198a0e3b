"""Pods created directly: what the real apiserver stores, or refuses, with podgate's webhooks registered.

Server-side dry runs where they suffice: the apiserver runs its whole admission chain, webhooks included,
and returns the object it would store.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Cluster, Response
from tests.e2e.objects import (
    DOWNWARD_ENV,
    REQUESTS,
    TEST_LABELS,
    container,
    env_names,
    only_container,
    pod,
    probes,
    toleration_seconds,
)

NAMESPACE = "e2e-pods"
GUARANTEED_TEST_DEFAULTS = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "100m", "memory": "256Mi"},
}
# The apiserver's DefaultTolerationSeconds (300 s), and what policies/tolerations.yaml makes of it.
APISERVER_TOLERATIONS = {"node.kubernetes.io/not-ready": 300, "node.kubernetes.io/unreachable": 300}
PODGATE_TOLERATIONS = {"node.kubernetes.io/not-ready": 30, "node.kubernetes.io/unreachable": 30}


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    return cluster.namespace(NAMESPACE)


def dry_run(cluster: Cluster, obj: dict[str, Any], namespace: str) -> Response:
    return cluster.api.create(obj, namespace, dry_run=True)


def admitted(response: Response) -> dict[str, Any]:
    assert response.status == 201, f"{response.status}: {response.message}"
    return response.body


def test_a_bare_pod_is_denied_naming_each_container(cluster: Cluster, ns: str) -> None:
    bare = pod("bare", container("web"), container("sidecar", "envoy:1.30"))
    response = dry_run(cluster, bare, ns)
    assert response.status == 403
    assert response.message.startswith('admission webhook "validate.podgate.io" denied the request')
    for name in ("web", "sidecar"):
        assert f'container "{name}" is missing cpu and memory requests' in response.message


def test_a_pod_requesting_only_cpu_is_denied_for_memory(cluster: Cluster, ns: str) -> None:
    half = pod("half", container(resources={"requests": {"cpu": "100m"}}))
    response = dry_run(cluster, half, ns)
    assert response.status == 403
    assert 'container "app" is missing memory request' in response.message


def test_a_pod_with_requests_gets_every_default_but_resources(cluster: Cluster, ns: str) -> None:
    stored = admitted(dry_run(cluster, pod("api", container(resources=REQUESTS, port=8080)), ns))
    app = only_container(stored)
    assert app["resources"] == REQUESTS  # sized by its team: no limits invented
    # No port named http: the first TCP port is probed.
    assert {kind: probe.get("tcpSocket") for kind, probe in probes(app).items()} == {
        kind: {"port": 8080} for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert env_names(app) == DOWNWARD_ENV
    assert toleration_seconds(stored) == PODGATE_TOLERATIONS
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/name": "api"}


def test_a_limits_only_pod_gets_its_requests_from_the_apiserver(cluster: Cluster, ns: str) -> None:
    """The apiserver defaults requests to limits before any webhook sees the pod, so podgate judges a pod
    that has requests: admitted, not denied as "missing requests"."""
    limits = {"limits": {"cpu": "250m", "memory": "128Mi"}}
    stored = admitted(dry_run(cluster, pod("limited", container(resources=limits)), ns))
    assert only_container(stored)["resources"] == {**limits, "requests": limits["limits"]}
    assert stored["status"]["qosClass"] == "Guaranteed"


def test_a_test_labelled_pod_gets_every_default(cluster: Cluster, ns: str) -> None:
    web = pod("web", container(port=80, port_name="http"), labels=TEST_LABELS)
    stored = admitted(dry_run(cluster, web, ns))
    app = only_container(stored)
    assert app["resources"] == GUARANTEED_TEST_DEFAULTS
    assert stored["status"]["qosClass"] == "Guaranteed"
    found = probes(app)
    assert {kind: probe["httpGet"] for kind, probe in found.items()} == {
        kind: {"path": "/", "port": "http", "scheme": "HTTP"}
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    # policies/probes.yaml's timings, past the apiserver's defaulting of the rest.
    assert (found["livenessProbe"]["periodSeconds"], found["livenessProbe"]["failureThreshold"]) == (10, 6)
    assert (found["readinessProbe"]["timeoutSeconds"], found["readinessProbe"]["failureThreshold"]) == (3, 3)
    assert (found["startupProbe"]["periodSeconds"], found["startupProbe"]["failureThreshold"]) == (5, 60)
    assert env_names(app) == DOWNWARD_ENV
    assert toleration_seconds(stored) == PODGATE_TOLERATIONS
    assert stored["metadata"]["labels"] == {**TEST_LABELS, "app.kubernetes.io/name": "web"}


def test_a_bare_pod_in_a_test_namespace_gets_the_test_resources(cluster: Cluster) -> None:
    namespace = cluster.namespace("payments-test")
    stored = admitted(dry_run(cluster, pod("bare", container()), namespace))
    assert only_container(stored)["resources"] == GUARANTEED_TEST_DEFAULTS


def test_a_jvm_pod_gets_its_preset(cluster: Cluster, ns: str) -> None:
    jvm = pod(
        "billing",
        container(image="eclipse-temurin:21", resources=REQUESTS),
        labels={"app.kubernetes.io/runtime": "jvm"},
    )
    stored = admitted(dry_run(cluster, jvm, ns))
    app = only_container(stored)
    assert "JAVA_TOOL_OPTIONS" in env_names(app)
    assert {"name": "jvm-tmp", "mountPath": "/tmp"} in app["volumeMounts"]
    assert "podpreset.admission.kubernetes.io/podpreset-jvm-tuning" in stored["metadata"]["annotations"]


def test_a_generate_name_pod_is_named_after_its_prefix(cluster: Cluster, ns: str) -> None:
    """The mutating webhook runs before the apiserver generates the name: podgate sees only generateName."""
    response = cluster.api.create(pod(None, container(resources=REQUESTS), generate_name="worker-"), ns)
    stored = admitted(response)
    name = stored["metadata"]["name"]
    assert name.startswith("worker-") and len(name) > len("worker-")
    assert stored["metadata"]["labels"]["app.kubernetes.io/name"] == "worker"
    reviews = [r for r in cluster.server.reviews() if r.get("generateName") == "worker-"]
    assert {(r["endpoint"], r["name"]) for r in reviews} == {("mutate", ""), ("validate", name)}


def test_kubectl_create_dry_run_server_shows_the_defaults_and_stores_nothing(
    cluster: Cluster, ns: str
) -> None:
    manifest = yaml.safe_dump(pod("preview", container(resources=REQUESTS)))
    result = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-n", ns, "-f", "-", input=manifest)
    preview = yaml.safe_load(result.stdout)
    assert env_names(only_container(preview)) == DOWNWARD_ENV
    # Admission warnings reach the user on stderr (a portless container gets no probes).
    assert 'Warning: probes.infer-from-ports: container "app"' in result.stderr
    assert cluster.api.request("GET", f"/api/v1/namespaces/{ns}/pods/preview").status == 404

    denied = cluster.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        ns,
        "-f",
        "-",
        check=False,
        input=yaml.safe_dump(pod("preview", container())),
    )
    assert denied.returncode == 1
    assert 'admission webhook "validate.podgate.io" denied the request' in denied.stderr


@pytest.mark.parametrize("namespace", ["kube-system", "e2e-ignored"])
def test_excluded_namespaces_are_never_sent_to_podgate(cluster: Cluster, namespace: str) -> None:
    if namespace != "kube-system":
        cluster.namespace(namespace, **{"podgate.io/ignore": "true"})
    name = f"untouched-{namespace}"
    stored = admitted(dry_run(cluster, pod(name, container()), namespace))
    assert "env" not in only_container(stored)
    assert toleration_seconds(stored) == APISERVER_TOLERATIONS
    assert not any(r.get("name") == name for r in cluster.server.reviews())


def test_pod_level_resources_with_container_requests_are_admitted_as_written(
    cluster: Cluster, ns: str
) -> None:
    pod_level = {"requests": {"cpu": "150m", "memory": "300Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    small = {"requests": {"cpu": "50m", "memory": "100Mi"}}
    shared = pod(
        "shared",
        container("a", resources=small),
        container("b", "busybox:1.36", resources=small),
        resources=pod_level,
    )
    stored = admitted(dry_run(cluster, shared, ns))
    assert stored["spec"]["resources"] == pod_level
    assert [c["resources"] for c in stored["spec"]["containers"]] == [small, small]


# Issue 15 fault 4, fixed: test defaults take containers past pod-level requests.
def test_a_test_pod_with_pod_level_requests_and_bare_containers_is_valid(cluster: Cluster, ns: str) -> None:
    pod_level = {"requests": {"cpu": "150m", "memory": "300Mi"}}
    shared = pod(
        "shared-test", container("a"), container("b", "busybox:1.36"), labels=TEST_LABELS, resources=pod_level
    )
    response = dry_run(cluster, shared, ns)
    # Today: 422 "must be greater than or equal to aggregate container requests of 200m".
    assert response.status == 201, response.message


# Issue 15 fault 4, fixed: pod-level requests do not satisfy requireRequests.
def test_pod_level_requests_satisfy_the_requests_requirement(cluster: Cluster, ns: str) -> None:
    pod_level = {"requests": {"cpu": "150m", "memory": "300Mi"}}
    shared = pod("shared-prod", container("a"), container("b", "busybox:1.36"), resources=pod_level)
    response = dry_run(cluster, shared, ns)
    assert "missing" not in response.message
    assert response.status == 201, response.message


def test_server_side_apply_creates_with_defaults_and_reapplies_cleanly(cluster: Cluster, ns: str) -> None:
    """podgate's changes belong to no field manager: a re-apply of the same manifest neither removes them
    (which the apiserver would refuse, pod specs being immutable) nor conflicts with them."""
    manifest = pod("applied", container(port=80, port_name="http"), labels=TEST_LABELS)
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    stored = cluster.api.get("Pod", "v1", ns, "applied")
    assert only_container(stored)["resources"] == GUARANTEED_TEST_DEFAULTS
    (managed,) = stored["metadata"]["managedFields"]
    assert (managed["manager"], managed["operation"]) == ("kubectl", "Apply")
    applied = managed["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert not {"f:resources", "f:env", "f:livenessProbe"} & applied.keys()

    manifest["metadata"]["annotations"] = {"example.com/owner": "team-web"}
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    again = cluster.api.get("Pod", "v1", ns, "applied")
    assert again["metadata"]["annotations"] == {"example.com/owner": "team-web"}
    assert again["spec"] == stored["spec"]


def test_server_side_apply_is_judged_like_create(cluster: Cluster, ns: str) -> None:
    manifest = yaml.safe_dump(pod("applied-bare", container()))
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", ns, "-f", "-", input=manifest, check=False
    )
    assert result.returncode == 1
    assert 'admission webhook "validate.podgate.io" denied the request' in result.stderr


# Issue 15 fault 8, fixed: the denial suggests labelling the pod as a test pod.
def test_the_denial_says_what_to_set_not_how_to_escape(cluster: Cluster, ns: str) -> None:
    response = dry_run(cluster, pod("bare", container("web")), ns)
    assert response.status == 403
    assert "spec.containers[0].resources.requests" in response.message
    assert "app.kubernetes.io/env=test" not in response.message
