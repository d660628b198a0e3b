"""Where each kind keeps its pod, and the future pod of a workload checked against the captured ones."""

import copy
from typing import Any

import pytest

from tests.conftest import fixture_request
from webhook.engine.workloads import (
    ASSIGNED_LATER,
    POD_CREATORS,
    apiserver_pod_defaults,
    controller_labels,
    future_pod,
    pod_creator,
)
from webhook.kube.pods import POD_KINDS, WORKLOAD_KINDS, pod_level_resources, template_of, view_of
from webhook.kube.request import parse_request

# (workload, a pod its controller created)
PAIRS = [
    ("0040", "0044"),
    ("0042", "0044"),
    ("0048", "0050"),
    ("0053", "0055"),
    ("0054", "0056"),
    ("0058", "0066"),
    ("0060", "0062"),
    ("0064", "0066"),
    ("0070", "0072"),
]
KIND_FIXTURES = {
    "Pod": "0001",
    "Deployment": "0039",
    "ReplicaSet": "0059",
    "StatefulSet": "0047",
    "DaemonSet": "0051",
    "Job": "0053",
    "CronJob": "0057",
}


@pytest.mark.parametrize("kind", KIND_FIXTURES)
def test_every_kind_has_its_pod_where_the_fixtures_put_it(kind: str) -> None:
    request = fixture_request(KIND_FIXTURES[kind])
    view = view_of(request["object"], kind, "capture-demo")
    assert view is not None and view.kind == kind and view.is_workload is (kind != "Pod")
    container = next(view.containers())
    assert container.path("image")[: len(view.path)] == view.path
    assert view.spec["containers"][0] is container.body
    assert template_of(request["object"], kind) == (
        request["object"]["spec"] if kind == "Pod" else view.template
    )


def test_the_kinds_podgate_knows() -> None:
    assert set(POD_KINDS) == {"Pod", *WORKLOAD_KINDS} == {*KIND_FIXTURES, "ReplicationController"}
    assert set(POD_CREATORS) == set(WORKLOAD_KINDS)
    assert view_of({"spec": {}}, "Deployment", "x") is None  # no template yet
    assert view_of({"spec": {}}, "ConfigMap", "x") is None


def _future(number: str) -> tuple[Any, Any]:
    request = parse_request(fixture_request(number))
    view = view_of(copy.deepcopy(dict(request.object)), request.kind, request.namespace)
    assert view is not None
    return future_pod(request, view)


@pytest.mark.parametrize(("workload", "pod"), PAIRS, ids=[f"{w}-{p}" for w, p in PAIRS])
def test_the_future_pod_is_the_pod_the_controller_created(workload: str, pod: str) -> None:
    view, matching = _future(workload)
    captured_request = fixture_request(pod)
    captured = captured_request["object"]
    assert matching.kind == "Pod" and matching.operation == "CREATE"
    assert matching.object["metadata"] is view.metadata and matching.object["spec"] is view.spec
    assert matching.username == captured_request["userInfo"]["username"]
    assert matching.groups == tuple(captured_request["userInfo"]["groups"])
    assert matching.namespace == view.metadata["namespace"] == captured["metadata"]["namespace"]
    labels = dict(view.labels)
    assert labels.keys() == captured["metadata"]["labels"].keys()
    known = {key: value for key, value in labels.items() if value != ASSIGNED_LATER}
    assert known.items() <= captured["metadata"]["labels"].items()
    for field in ("tolerations", "serviceAccountName", "enableServiceLinks", "hostname", "subdomain"):
        assert view.spec.get(field) == captured["spec"].get(field), field
    for ours, theirs in zip(view.spec["containers"], captured["spec"]["containers"], strict=True):
        assert ours["resources"] == theirs["resources"]


def test_the_future_pod_is_a_copy_with_the_workloads_paths() -> None:
    request = fixture_request("0057")
    before = copy.deepcopy(request)
    view, _ = _future("0057")
    view.spec["containers"][0]["image"] = "changed"
    assert fixture_request("0057") == before
    assert view.kind == "CronJob" and view.path == ("spec", "jobTemplate", "spec", "template")
    assert next(view.containers()).path("resources") == (
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
        0,
        "resources",
    )


@pytest.mark.parametrize(
    ("number", "labels"),
    [
        ("0039", {"pod-template-hash": ASSIGNED_LATER}),
        ("0041", {}),  # the deployment controller already put pod-template-hash in the template
        ("0059", {}),
        (
            "0047",
            {
                "controller-revision-hash": ASSIGNED_LATER,
                "statefulset.kubernetes.io/pod-name": "db-sts-0",
                "apps.kubernetes.io/pod-index": "0",
            },
        ),
        ("0051", {"controller-revision-hash": ASSIGNED_LATER, "pod-template-generation": ASSIGNED_LATER}),
        (
            "0053",  # mutating stage: the Job has no uid yet
            {
                "batch.kubernetes.io/controller-uid": ASSIGNED_LATER,
                "batch.kubernetes.io/job-name": "once-job",
                "controller-uid": ASSIGNED_LATER,
                "job-name": "once-job",
            },
        ),
        (
            "0057",  # each Job of a CronJob has a name of its own
            {
                "batch.kubernetes.io/controller-uid": ASSIGNED_LATER,
                "batch.kubernetes.io/job-name": ASSIGNED_LATER,
                "controller-uid": ASSIGNED_LATER,
                "job-name": ASSIGNED_LATER,
            },
        ),
    ],
)
def test_controller_labels(number: str, labels: dict[str, str]) -> None:
    assert controller_labels(parse_request(fixture_request(number))) == labels


def test_controller_labels_follow_the_workloads_spec() -> None:
    request = fixture_request("0047")
    request["object"]["spec"]["ordinals"] = {"start": 3}
    sts = controller_labels(parse_request(request))
    assert (
        sts["apps.kubernetes.io/pod-index"] == "3" and sts["statefulset.kubernetes.io/pod-name"] == "db-sts-3"
    )
    job = fixture_request("0053")
    job["object"]["spec"]["completionMode"] = "Indexed"
    assert controller_labels(parse_request(job))["batch.kubernetes.io/job-completion-index"] == "0"
    job["object"]["spec"]["manualSelector"] = True
    assert controller_labels(parse_request(job)) == {}


def test_pods_are_created_by_the_controllers_service_accounts() -> None:
    assert pod_creator("Deployment") == "system:serviceaccount:kube-system:replicaset-controller"
    assert pod_creator("DaemonSet") == "system:serviceaccount:kube-system:daemon-set-controller"
    assert pod_creator("CronJob") == "system:serviceaccount:kube-system:job-controller"


def test_requests_are_copied_from_limits_only_where_missing() -> None:
    spec: dict[str, Any] = {
        "initContainers": [{"name": "setup", "resources": {"limits": {"cpu": "1"}}}],
        "containers": [
            {"name": "app", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1"}}},
            {"name": "bare", "resources": {}},
        ],
    }
    apiserver_pod_defaults(spec)
    assert spec["initContainers"][0]["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert spec["containers"][1]["resources"] == {}
    assert spec["serviceAccountName"] == "default"


def test_a_pod_that_tolerates_every_taint_gets_no_eviction_tolerations() -> None:
    everything = {"operator": "Exists"}
    spec: dict[str, Any] = {"containers": [], "tolerations": [everything]}
    apiserver_pod_defaults(spec)
    assert spec["tolerations"] == [everything]
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 10}
    spec = {"containers": [], "tolerations": [own]}
    apiserver_pod_defaults(spec)
    assert [t["key"] for t in spec["tolerations"]] == [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    assert spec["tolerations"][0] is own


def test_daemon_pods_tolerate_node_trouble_for_ever() -> None:
    own = {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 5,
    }
    spec: dict[str, Any] = {"containers": [], "tolerations": [own], "hostNetwork": True}
    apiserver_pod_defaults(spec, daemon=True)
    assert spec["tolerations"][0] == {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
    }
    assert [t["key"].rpartition("/")[2] for t in spec["tolerations"]] == [
        "not-ready",
        "unreachable",
        "disk-pressure",
        "memory-pressure",
        "pid-pressure",
        "unschedulable",
        "network-unavailable",
    ]
    assert all("tolerationSeconds" not in t for t in spec["tolerations"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, set()),
        ({"resources": None}, set()),
        ({"resources": {"requests": {"cpu": "1"}}}, {"cpu"}),
        ({"resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "1"}}}, {"cpu", "memory"}),
        ({"resources": {"requests": {"ephemeral-storage": "1Gi", "hugepages-2Mi": "2Mi"}}}, set()),
        ({"resources": {"requests": "lots"}}, set()),
    ],
    ids=["none", "null", "cpu-request", "memory-limit-cpu-request", "not-pod-level", "malformed"],
)
def test_pod_level_resources_are_the_cpu_and_memory_the_pod_budgets(
    spec: dict[str, Any], expected: set[str]
) -> None:
    assert pod_level_resources(spec) == expected
