"""Pods created by the kube-controller-manager from Deployments, StatefulSets, DaemonSets, Jobs and CronJobs,
and workloads refused at creation for the pods they would make.

There is no scheduler or kubelet: the pods stay Pending, which is all admission needs. A Node object (no
kubelet behind it) gives the DaemonSet controller somewhere to place its pod.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.objects import (
    DOWNWARD_ENV,
    REQUESTS,
    TEST_LABELS,
    container,
    cronjob,
    daemonset,
    deployment,
    env_names,
    job,
    only_container,
    probes,
    statefulset,
    toleration_seconds,
)
from tests.e2e.support import wait_for

NAMESPACE = "e2e-workloads"
LIMITS_ONLY = {"limits": {"cpu": "200m", "memory": "128Mi"}}
# Label selector of each workload's pods, and how many it makes.
PODS = {
    "web": ("e2e.podgate.io/app=web", 2),
    "api": ("e2e.podgate.io/app=api", 1),
    "db": ("e2e.podgate.io/app=db", 1),
    "agent": ("e2e.podgate.io/app=agent", 1),
    "migrate": ("batch.kubernetes.io/job-name=migrate", 1),
    "report-manual": ("batch.kubernetes.io/job-name=report-manual", 1),
}


@pytest.fixture(scope="module")
def pods(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """Every workload created at once, then their pods once the controllers have made them all."""
    ns = cluster.namespace(NAMESPACE)
    cluster.api.must_create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "e2e-node"}})
    for workload in (
        deployment("web", container(port=80, port_name="http"), replicas=2, labels=TEST_LABELS),
        deployment("api", container(resources=LIMITS_ONLY, port=8080)),
        statefulset("db", container(image="postgres:16", resources=REQUESTS, port=5432)),
        daemonset("agent", container(image="fluent/fluent-bit:3.0", resources=REQUESTS)),
        job("migrate", container(image="migrate/migrate:v4", resources=REQUESTS)),
        cronjob("report", container(image="busybox:1.36", resources=REQUESTS)),
    ):
        cluster.api.must_create(workload, ns)
    cluster.kubectl("create", "job", "report-manual", "--from=cronjob/report", "-n", ns)

    def made() -> dict[str, list[dict[str, Any]]] | None:
        found = {name: cluster.api.pods(ns, selector) for name, (selector, _) in PODS.items()}
        return found if all(len(found[name]) == count for name, (_, count) in PODS.items()) else None

    return wait_for(made, "every controller to create its pods", timeout=60, interval=0.5)


def test_controllers_create_the_pods_podgate_reviews(cluster: Cluster, pods: dict[str, list[Any]]) -> None:
    """Who asks podgate to admit each pod: the controller's own service account (kube-controller-manager
    runs with --use-service-account-credentials), never the user who applied the workload."""
    controller = "system:serviceaccount:kube-system:{}-controller".format
    expected = {
        "web": controller("replicaset"),
        "api": controller("replicaset"),
        "db": controller("statefulset"),
        "agent": controller("daemon-set"),
        "migrate": controller("job"),
        "report-manual": controller("job"),
    }
    users = {}
    for review in cluster.server.reviews():
        if review["namespace"] == NAMESPACE and review["kind"] == "Pod" and review["endpoint"] == "validate":
            for name, found in pods.items():
                if review["name"] in {p["metadata"]["name"] for p in found}:
                    users[name] = review["user"]
    assert users == expected


def test_deployment_pods_get_the_test_defaults(pods: dict[str, list[dict[str, Any]]]) -> None:
    for pod in pods["web"]:
        app = only_container(pod)
        assert app["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
        assert set(probes(app)) == {"livenessProbe", "readinessProbe", "startupProbe"}
        assert env_names(app) == DOWNWARD_ENV
        assert toleration_seconds(pod) == {
            "node.kubernetes.io/not-ready": 30,
            "node.kubernetes.io/unreachable": 30,
        }
        # Named after the Deployment, not the ReplicaSet (web-<hash>) that created it.
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "web"


def test_limits_only_deployment_pods_get_requests_from_the_apiserver(
    pods: dict[str, list[dict[str, Any]]],
) -> None:
    (pod,) = pods["api"]
    assert only_container(pod)["resources"] == {**LIMITS_ONLY, "requests": LIMITS_ONLY["limits"]}


def test_statefulset_pods_are_named_after_their_set(pods: dict[str, list[dict[str, Any]]]) -> None:
    (pod,) = pods["db"]
    assert pod["metadata"]["name"] == "db-0"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "db"
    app = only_container(pod)
    assert app["resources"] == REQUESTS
    assert app["livenessProbe"]["tcpSocket"] == {"port": 5432}


def test_daemonset_pods_keep_staying_on_failed_nodes(pods: dict[str, list[dict[str, Any]]]) -> None:
    """The DaemonSet controller gives its pods not-ready/unreachable tolerations without a time limit
    (a node agent stays with its node): podgate shortens only the apiserver's 300 s default."""
    (pod,) = pods["agent"]
    assert toleration_seconds(pod) == {
        "node.kubernetes.io/not-ready": None,
        "node.kubernetes.io/unreachable": None,
    }
    assert env_names(only_container(pod)) == DOWNWARD_ENV


@pytest.mark.parametrize("name", ["migrate", "report-manual"])
def test_job_and_cronjob_pods_get_no_probes(pods: dict[str, list[dict[str, Any]]], name: str) -> None:
    (pod,) = pods[name]
    app = only_container(pod)
    assert probes(app) == {}
    assert app["resources"] == REQUESTS
    assert env_names(app) == DOWNWARD_ENV
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == name


BARE_WORKLOADS = [
    deployment("bare", container()),
    statefulset("bare", container()),
    daemonset("bare", container()),
    job("bare", container()),
    cronjob("bare", container()),
    {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "bare"},
        "spec": deployment("bare", container())["spec"],
    },
    {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "bare"},
        "spec": {
            "selector": {"e2e.podgate.io/app": "bare"},
            "template": deployment("bare", container())["spec"]["template"],
        },
    },
]


@pytest.mark.parametrize("workload", BARE_WORKLOADS, ids=lambda w: w["kind"])
def test_a_workload_whose_pods_would_be_denied_is_refused(cluster: Cluster, workload: dict[str, Any]) -> None:
    response = cluster.api.create(workload, cluster.namespace(NAMESPACE), dry_run=True)
    assert response.status == 403
    assert 'admission webhook "validate.podgate.io" denied the request' in response.message
    assert 'container "app" is missing cpu and memory requests' in response.message
