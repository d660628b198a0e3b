"""A workload's future pod: its template as the pod its controller will create, and who will create it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping
from typing import Any

from webhook.kube import jsoncodec
from webhook.kube.limitrange import apply_defaults
from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest

# Label values only the controller knows when it creates the pod (hashes of the template, the Job
# uid before the apiserver assigns it, the name a CronJob gives each Job). The placeholder is not a
# valid label value, so it equals no value a selector lists: `In` is false, `NotIn` and `Exists` true.
ASSIGNED_LATER = "<assigned by the controller>"

# Who sends the CREATE of a workload's pods: kube-controller-manager run with
# --use-service-account-credentials (kubeadm, kind and the managed offerings do), one account per loop.
POD_CREATORS: Mapping[str, str] = {
    "Deployment": "replicaset-controller",  # through the ReplicaSet it creates
    "ReplicaSet": "replicaset-controller",
    "ReplicationController": "replication-controller",
    "StatefulSet": "statefulset-controller",
    "DaemonSet": "daemon-set-controller",
    "Job": "job-controller",
    "CronJob": "job-controller",  # through the Job it creates
}
SERVICE_ACCOUNT_GROUPS = (
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
    "system:authenticated",
)

# What the apiserver's DefaultTolerationSeconds plugin gives a pod that tolerates neither taint.
_EVICTION_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
EVICTION_TOLERATION_SECONDS = 300
# What the DaemonSet controller adds to every daemon pod, so node trouble never evicts or blocks it.
_DAEMON_TOLERATIONS = (
    *((key, "NoExecute") for key in _EVICTION_TAINTS),
    *(
        (f"node.kubernetes.io/{key}", "NoSchedule")
        for key in ("disk-pressure", "memory-pressure", "pid-pressure", "unschedulable")
    ),
)
_HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def pod_creator(kind: str) -> str:
    return f"system:serviceaccount:kube-system:{POD_CREATORS[kind]}"


def future_pod(request: AdmissionRequest, template: PodView) -> tuple[PodView, AdmissionRequest]:
    """The pod a workload's controller will create from `template`, and that pod's CREATE request.

    The view is a copy (mutating it never touches the workload) with the workload's kind and template
    path, so rule modules still name the workload and paths point into its manifest. The request
    carries the same pod as a Pod object.
    """
    # Read, never setdefault, the template: the workload itself must stay as received.
    source = {
        "metadata": template.template.get("metadata") or {},
        "spec": template.template.get("spec") or {},
    }
    pod: dict[str, Any] = jsoncodec.copy(source)
    pod["metadata"]["namespace"] = request.namespace
    pod["metadata"]["labels"] = future_labels(request, template)
    apiserver_pod_defaults(pod["spec"], daemon=request.kind == "DaemonSet")
    # The LimitRanger plugin defaults the pod's limits and requests before any webhook sees it.
    apply_defaults(pod, template.limit_ranges)
    if request.kind == "StatefulSet":
        _stateful_identity(pod["spec"], request)
    view = PodView(pod, request.namespace, request.kind, template.path, template.limit_ranges)
    return view, pod_request(request, pod)


def future_labels(request: AdmissionRequest, template: PodView) -> dict[str, str]:
    """The labels of the pods: the template's, and what the controller adds where the template has not."""
    return {**controller_labels(request), **template.labels}


def labels_only(request: AdmissionRequest, template: PodView) -> PodView:
    """A view of the future pod that only has its labels: all a policy's selector needs."""
    metadata = {"namespace": request.namespace, "labels": future_labels(request, template)}
    return PodView({"metadata": metadata}, request.namespace, request.kind, template.path)


def pod_request(request: AdmissionRequest, pod: Mapping[str, Any] | None = None) -> AdmissionRequest:
    """The CREATE of a workload's pods: a Pod in its namespace, sent by its controller.

    This is what policies are matched against; without `pod` its object only has the namespace.
    """
    obj = pod if pod is not None else {"metadata": {"namespace": request.namespace}}
    return dataclasses.replace(
        request,
        kind="Pod",
        group="",
        version="v1",
        name="",
        generate_name=f"{request.name}-",
        operation="CREATE",
        username=pod_creator(request.kind),
        groups=SERVICE_ACCOUNT_GROUPS,
        object={"apiVersion": "v1", "kind": "Pod", **obj},
        old_object=None,
    )


def controller_labels(request: AdmissionRequest) -> dict[str, str]:
    """Labels the controller (or the apiserver, for Jobs) adds to every pod beyond the template's."""
    kind, spec = request.kind, _mapping(request.object.get("spec"))
    if kind == "Deployment":
        return {"pod-template-hash": ASSIGNED_LATER}
    if kind == "StatefulSet":
        ordinal = str(_first_ordinal(spec))
        return {
            "controller-revision-hash": ASSIGNED_LATER,
            "statefulset.kubernetes.io/pod-name": f"{request.name}-{ordinal}",
            "apps.kubernetes.io/pod-index": ordinal,
        }
    if kind == "DaemonSet":
        return {"controller-revision-hash": ASSIGNED_LATER, "pod-template-generation": ASSIGNED_LATER}
    if kind in ("Job", "CronJob"):
        job = _mapping(_mapping(spec.get("jobTemplate")).get("spec")) if kind == "CronJob" else spec
        if job.get("manualSelector") is True:
            return {}
        # A CronJob names each Job <cronjob>-<scheduled minute>; the uid exists once the Job is stored.
        name = request.name if kind == "Job" else ASSIGNED_LATER
        uid = str(_mapping(request.object.get("metadata")).get("uid") or ASSIGNED_LATER)
        uid = uid if kind == "Job" else ASSIGNED_LATER
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        if job.get("completionMode") == "Indexed":
            labels["batch.kubernetes.io/job-completion-index"] = "0"
        return labels
    return {}


def apiserver_pod_defaults(spec: MutableMapping[str, Any], *, daemon: bool = False) -> None:
    """What a pod gets, and a pod template does not, before any webhook sees it (see the fixtures).

    Requests are copied from limits (Kubernetes defaults this on Pods only, never on templates),
    the ServiceAccount plugin names the default account, and pods get the eviction tolerations:
    infinite ones from the DaemonSet controller, 300 s ones from the DefaultTolerationSeconds plugin.
    The service-account token volume (random name) and the priority (from PriorityClasses podgate
    cannot see) are not emulated; no rule reads them.
    """
    for list_name in ("initContainers", "containers"):
        for container in spec.get(list_name) or ():
            resources = container.get("resources") if isinstance(container, dict) else None
            if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
                requests = resources.get("requests")
                if not isinstance(requests, dict):
                    requests = resources["requests"] = {}
                for name, value in resources["limits"].items():
                    requests.setdefault(name, value)
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec.setdefault("enableServiceLinks", True)
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = spec["tolerations"] = []
    if daemon:
        wanted = list(_DAEMON_TOLERATIONS)
        if spec.get("hostNetwork") is True:
            wanted.append(_HOST_NETWORK_TOLERATION)
        for key, effect in wanted:
            _add_or_update(tolerations, {"key": key, "operator": "Exists", "effect": effect})
        return
    for key in _EVICTION_TAINTS:
        if not any(_tolerates_eviction(t, key) for t in tolerations):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": EVICTION_TOLERATION_SECONDS,
                }
            )


def _add_or_update(tolerations: list[Any], toleration: dict[str, str]) -> None:
    # The controller replaces a toleration of the same taint (a user's tolerationSeconds included).
    same = ("key", "operator", "value", "effect")
    for index, existing in enumerate(tolerations):
        if isinstance(existing, Mapping) and all(existing.get(f, "") == toleration.get(f, "") for f in same):
            tolerations[index] = toleration
            return
    tolerations.append(toleration)


def _tolerates_eviction(toleration: Any, key: str) -> bool:
    # DefaultTolerationSeconds leaves a pod alone when any toleration covers the taint: same or empty
    # key, NoExecute or empty effect.
    if not isinstance(toleration, Mapping):
        return False
    return toleration.get("key", "") in ("", key) and toleration.get("effect", "") in ("", "NoExecute")


def _stateful_identity(spec: MutableMapping[str, Any], request: AdmissionRequest) -> None:
    """A StatefulSet pod's stable network identity; judged as its first pod (other ordinals differ)."""
    workload_spec = _mapping(request.object.get("spec"))
    spec["hostname"] = f"{request.name}-{_first_ordinal(workload_spec)}"
    if workload_spec.get("serviceName"):
        spec["subdomain"] = workload_spec["serviceName"]


def _first_ordinal(spec: Mapping[str, Any]) -> int:
    start = _mapping(spec.get("ordinals")).get("start", 0)
    return start if isinstance(start, int) else 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
