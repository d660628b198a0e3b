"""Small builders for the objects the cases create, and readers for what the cluster stored."""

from __future__ import annotations

from typing import Any

REQUESTS = {"requests": {"cpu": "50m", "memory": "64Mi"}}
TEST_LABELS = {"app.kubernetes.io/env": "test"}
# What the shipped policies give every gated pod (policies/downward-env.yaml).
DOWNWARD_ENV = [
    "MY_NODE_NAME",
    "MY_POD_NAME",
    "MY_POD_NAMESPACE",
    "MY_POD_IP",
    "MY_POD_SERVICE_ACCOUNT",
    "MY_CPU_LIMIT",
    "MY_MEMORY_LIMIT_MIB",
]


def container(
    name: str = "app",
    image: str = "nginx:1.27",
    *,
    resources: dict[str, Any] | None = None,
    port: int | None = None,
    port_name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    built: dict[str, Any] = {"name": name, "image": image, **extra}
    if resources is not None:
        built["resources"] = resources
    if port is not None:
        built["ports"] = [{"containerPort": port, **({"name": port_name} if port_name else {})}]
    return built


def pod(
    name: str | None,
    *containers: dict[str, Any],
    labels: dict[str, str] | None = None,
    generate_name: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": labels} if labels else {}
    if name:
        metadata["name"] = name
    if generate_name:
        metadata["generateName"] = generate_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": list(containers) or [container()], **spec},
    }


def template(labels: dict[str, str], *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels}, "spec": {"containers": list(containers), **spec}}


def deployment(
    name: str, *containers: dict[str, Any], replicas: int = 1, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    selector = {"e2e.podgate.io/app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": template({**selector, **(labels or {})}, *containers),
        },
    }


def statefulset(name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    selector = {"e2e.podgate.io/app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": template(selector, *containers),
        },
    }


def daemonset(name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    selector = {"e2e.podgate.io/app": name}
    # Node agents tolerate every taint; here it also lets the pod onto the suite's kubelet-less Node.
    body = template(selector, *containers, tolerations=[{"operator": "Exists"}])
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": selector}, "template": body},
    }


def job_spec(*containers: dict[str, Any], completions: int = 1) -> dict[str, Any]:
    return {
        "completions": completions,
        "parallelism": completions,
        "template": {"spec": {"restartPolicy": "Never", "containers": list(containers)}},
    }


def job(name: str, *containers: dict[str, Any], completions: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": job_spec(*containers, completions=completions),
    }


def cronjob(name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        # Never due during a run: its pods come only from `kubectl create job --from=cronjob/NAME`.
        "spec": {"schedule": "0 3 1 1 *", "jobTemplate": {"spec": job_spec(*containers)}},
    }


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


# -- reading stored pods ---------------------------------------------------------------------------------


def only_container(obj: dict[str, Any]) -> dict[str, Any]:
    (found,) = obj["spec"]["containers"]
    result: dict[str, Any] = found
    return result


def env_names(container: dict[str, Any]) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def toleration_seconds(pod: dict[str, Any]) -> dict[str, int | None]:
    """The NoExecute tolerations of node failure, by taint key: how long the pod stays on a dead node."""
    return {
        t["key"]: t.get("tolerationSeconds")
        for t in pod["spec"].get("tolerations", [])
        if t.get("key", "").startswith("node.kubernetes.io/") and t.get("effect") == "NoExecute"
    }


def probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        kind: container[kind]
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
        if kind in container
    }
