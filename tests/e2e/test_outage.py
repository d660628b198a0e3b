"""podgate stopped: what the cluster refuses, and what must keep working (issue 15 fault 1).

The validating webhook fails closed, so while podgate is down no pod and no workload with a new pod spec or
template is admitted in a gated namespace. Everything else must go on: podgate has nothing to judge in an
UPDATE that leaves the pod spec (Pod) or the pod template (workloads) as it was, and deploy/'s
matchConditions keep such UPDATEs from reaching it. Without them the deployment controller cannot scale a
ReplicaSet, the Job controller cannot release its finished pods, and `kubectl label` fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Cluster
from tests.e2e.objects import REQUESTS, container, cronjob, deployment, job, pod
from tests.e2e.support import wait_for

NAMESPACE = "e2e-outage"
FAILED_CALL = 'failed calling webhook "validate.podgate.io"'
APP = container(resources=REQUESTS)


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> Iterator[str]:
    """Workloads and pods made while podgate is up; then podgate stopped for the module's cases."""
    ns = cluster.namespace(NAMESPACE)
    for obj in (
        deployment("shrink", APP, replicas=3),
        deployment("grow", APP, replicas=1),
        job("batch", container(image="busybox:1.36", resources=REQUESTS), completions=2),
        cronjob("nightly", container(image="busybox:1.36", resources=REQUESTS)),
        pod("standalone", APP),
        pod("doomed", APP),
    ):
        cluster.api.must_create(obj, ns)

    def made() -> bool:
        selectors = ("e2e.podgate.io/app in (shrink, grow)", "job-name=batch")
        return [len(cluster.api.pods(ns, s)) for s in selectors] == [4, 2]

    wait_for(made, "the Deployments' and the Job's pods")
    with cluster.podgate_stopped():
        yield ns


def admitted(cluster: Cluster, *args: str, manifest: str | None = None) -> None:
    """`kubectl ARGS` goes through (a refusal is the case failing, not the suite)."""
    result = cluster.kubectl(*args, input=manifest, check=False)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"


def replicaset(cluster: Cluster, ns: str, deployment_name: str) -> dict[str, Any]:
    (found,) = cluster.api.objects(
        "ReplicaSet", "apps/v1", ns, labelSelector=f"e2e.podgate.io/app={deployment_name}"
    )
    return found


# -- refused ------------------------------------------------------------------------------------------------


def test_new_pods_and_workloads_are_refused(cluster: Cluster, ns: str) -> None:
    for obj in (pod("new", APP), deployment("new", APP)):
        response = cluster.api.create(obj, ns, dry_run=True)
        assert response.status == 500
        assert FAILED_CALL in response.message


def test_a_changed_pod_spec_or_template_is_refused(cluster: Cluster, ns: str) -> None:
    for target in ("deployment/shrink", "pod/standalone", "cronjob/nightly"):
        result = cluster.kubectl("set", "image", "-n", ns, target, "*=nginx:1.28", check=False)
        assert result.returncode == 1, target
        assert FAILED_CALL in result.stderr, target


# -- still working ------------------------------------------------------------------------------------------


def test_excluded_namespaces_and_deletions_are_not_affected(cluster: Cluster, ns: str) -> None:
    ignored = cluster.namespace("e2e-outage-ignored", **{"podgate.io/ignore": "true"})
    for namespace in ("kube-system", ignored):
        assert cluster.api.create(pod("during-outage", container()), namespace, dry_run=True).status == 201
    assert cluster.api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/doomed").status == 200


def test_scaling_a_deployment_down(cluster: Cluster, ns: str) -> None:
    admitted(cluster, "scale", "-n", ns, "deployment/shrink", "--replicas=1")
    wait_for(lambda: replicaset(cluster, ns, "shrink")["spec"]["replicas"] == 1, "the ReplicaSet scaled to 1")
    wait_for(lambda: len(cluster.api.pods(ns, "e2e.podgate.io/app=shrink")) == 1, "two pods deleted")


def test_scaling_a_deployment_up_waits_for_podgate(cluster: Cluster, ns: str) -> None:
    """The ReplicaSet is scaled; the pods it then creates are new pods, refused until podgate is back
    (the ReplicaSet controller retries them with back-off)."""
    admitted(cluster, "scale", "-n", ns, "deployment/grow", "--replicas=2")
    wait_for(lambda: replicaset(cluster, ns, "grow")["spec"]["replicas"] == 2, "the ReplicaSet scaled to 2")
    name = replicaset(cluster, ns, "grow")["metadata"]["name"]
    events = wait_for(
        lambda: cluster.api.objects(
            "Event", "v1", ns, fieldSelector=f"involvedObject.name={name},reason=FailedCreate"
        ),
        "a FailedCreate event",
    )
    assert FAILED_CALL in events[0]["message"]
    assert len(cluster.api.pods(ns, "e2e.podgate.io/app=grow")) == 1


def test_finished_job_pods_are_released(cluster: Cluster, ns: str) -> None:
    """No kubelet here: the pods are marked Succeeded through the status subresource, as a kubelet would.
    The Job controller must then remove its tracking finalizer from each pod, an UPDATE of the pod."""
    batch = cluster.api.pods(ns, "job-name=batch")
    for found in batch:
        path = f"/api/v1/namespaces/{ns}/pods/{found['metadata']['name']}/status"
        assert cluster.api.request("PATCH", path, {"status": {"phase": "Succeeded"}}).status == 200

    def complete() -> bool:
        status = cluster.api.get("Job", "batch/v1", ns, "batch")["status"]
        return any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions", []))

    wait_for(complete, "the Job to complete", timeout=20)
    assert [p["metadata"].get("finalizers") for p in cluster.api.pods(ns, "job-name=batch")] == [None, None]


def test_labelling_and_annotating_pods_and_workloads(cluster: Cluster, ns: str) -> None:
    for target in ("pod/standalone", "deployment/shrink", "job/batch", "cronjob/nightly"):
        admitted(cluster, "label", "-n", ns, target, "example.com/team=web")
        admitted(cluster, "annotate", "-n", ns, target, "example.com/ticket=OPS-1")


def test_suspending_a_cronjob(cluster: Cluster, ns: str) -> None:
    admitted(cluster, "patch", "-n", ns, "cronjob/nightly", "-p", '{"spec": {"suspend": true}}')
    assert cluster.api.get("CronJob", "batch/v1", ns, "nightly")["spec"]["suspend"] is True


def test_server_side_apply_that_leaves_the_template_alone(cluster: Cluster, ns: str) -> None:
    manifest = deployment("grow", APP, replicas=2)
    manifest["metadata"]["labels"] = {"example.com/tier": "frontend"}
    admitted(cluster, "apply", "--server-side", "-n", ns, "-f", "-", manifest=yaml.safe_dump(manifest))
