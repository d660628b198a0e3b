"""A Deployment and its Service from a few flags, in the seed's shape, settled through the policies."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.cli.manifests import Options, request_for
from webhook.engine.decision import Decision
from webhook.engine.evaluation import evaluate
from webhook.kube.names import dns_label_problem, label_value_problem
from webhook.kube.quantity import QuantityError, parse_quantity
from webhook.policy.model import PolicySet

NAME_LABEL = "app.kubernetes.io/name"
ENV_LABEL = "app.kubernetes.io/env"
PORT_NAME = "http"  # the probes policy gives httpGet probes to containers with a port of this name
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# Object names and label values both end up as DNS-1123 labels here (the Service name is a DNS name).


class ScaffoldError(ValueError):
    """Flags that cannot make a valid object."""


@dataclass(frozen=True)
class App:
    name: str
    image: str
    version: str | None = None
    env: str = "test"
    replicas: int = 1
    port: int = 80
    namespace: str | None = None
    requests: Mapping[str, str] = field(default_factory=dict)  # only what the user asked for:
    limits: Mapping[str, str] = field(default_factory=dict)  # the policies supply the defaults

    @property
    def image_ref(self) -> str:
        if self.version:
            return f"{self.image}:{self.version}"
        return self.image if _has_tag(self.image) else f"{self.image}:latest"


def _has_tag(image: str) -> bool:
    # "registry:5000/app" has a port, not a tag: only a colon after the last slash starts a tag.
    return "@" in image or ":" in image.rsplit("/", 1)[-1]


def check_names(name: str, env: str, namespace: str | None) -> list[str]:
    problems = []
    if dns_label_problem(name):
        problems.append(f"--name must be a DNS-1123 label: lower-case letters, digits, '-' (got {name!r})")
    if label_value_problem(env):
        problems.append(f"--env must be a label value: letters, digits, '-', '_', '.' (got {env!r})")
    if namespace is not None and dns_label_problem(namespace):
        problems.append(f"--namespace must be a DNS-1123 label (got {namespace!r})")
    return problems


def check_app(app: App) -> list[str]:
    """Every reason the flags cannot make a valid Deployment, as messages naming the flag."""
    problems = check_names(app.name, app.env, app.namespace)
    if not app.image or any(c.isspace() for c in app.image):
        problems.append(f"--image must be an image name such as nginx (got {app.image!r})")
    elif app.version and _has_tag(app.image):
        problems.append(f"--image {app.image} already has a tag or digest: drop --version")
    if app.replicas < 0:
        problems.append(f"--replicas must not be negative (got {app.replicas})")
    if not 1 <= app.port <= 65535:
        problems.append(f"--port must be between 1 and 65535 (got {app.port})")
    for kind, values in (("request", app.requests), ("limit", app.limits)):
        for resource, text in values.items():
            try:
                parse_quantity(text)
            except QuantityError as error:
                problems.append(f"--{kind}-{resource} {error}")
    for resource in sorted(set(app.requests) & set(app.limits)):
        request, limit = app.requests[resource], app.limits[resource]
        try:
            if parse_quantity(request) > parse_quantity(limit):
                problems.append(f"the {resource} request {request} exceeds its limit {limit}")
        except QuantityError:
            pass  # already reported above
    return problems


def version_warning(app: App) -> str | None:
    if app.image_ref.endswith(":latest"):
        return (
            f"image {app.image_ref}: no version, so every node may run a different build; "
            "give --version to pin one"
        )
    return None


def _labels(name: str, env: str) -> dict[str, str]:
    return {NAME_LABEL: name, ENV_LABEL: env}


def _metadata(name: str, env: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = _labels(name, env)
    return metadata


def deployment(app: App) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": app.name,
        "image": app.image_ref,
        "ports": [{"name": PORT_NAME, "containerPort": app.port, "protocol": "TCP"}],
    }
    resources = {
        key: dict(values) for key, values in (("requests", app.requests), ("limits", app.limits)) if values
    }
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(app.name, app.env, app.namespace),
        "spec": {
            "replicas": app.replicas,
            # The selector is immutable once created: it names the app only, so relabelling the
            # environment later does not orphan the running pods.
            "selector": {"matchLabels": {NAME_LABEL: app.name}},
            "template": {
                "metadata": {"labels": _labels(app.name, app.env)},
                "spec": {"containers": [container]},
            },
        },
    }


def service(
    name: str, *, env: str = "test", port: int = 80, type_: str = "ClusterIP", namespace: str | None = None
) -> dict[str, Any]:
    """The Service in front of the Deployment of the same name: it selects the same app label."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, env, namespace),
        "spec": {
            "type": type_,
            "selector": {NAME_LABEL: name},
            # By name, so the container port can change without touching the Service.
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def settle(obj: Mapping[str, Any], policies: PolicySet) -> tuple[dict[str, Any], Decision]:
    """The object as the cluster would store it, with what its pods will get written into its template.

    The cluster stores a Deployment as sent (unless a policy sets mutateTemplates) and gives its pods
    the defaults when the ReplicaSet creates them. A scaffold shows those defaults in the template
    instead, so what is printed is what will run and the defaults stay in one place, the policies:
    it is judged as if every policy set mutateTemplates. A policy that acts on pods only (one that
    matches kind Pod, say) still shows in the decision's `pod_changes`, for the caller to report.
    """
    templating = PolicySet(
        tuple(dataclasses.replace(p, mutate_templates=True) for p in policies.policies),
        policies.digest,
        policies.files,
    )
    namespace = (obj.get("metadata") or {}).get("namespace")
    request = request_for(obj, Options(namespace=namespace, user="podgate-scaffold"), "scaffold")
    decision = evaluate(templating, request)
    stored: dict[str, Any] = json.loads(json.dumps(decision.object))
    if not namespace:
        # The request needed a namespace, the manifest must not pin one: `kubectl apply -n` decides.
        stored["metadata"].pop("namespace", None)
    return stored, decision
