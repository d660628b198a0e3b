"""The part of a pod (or a workload's pod template) that podgate changes, in a form where what `podgate
apply` prints and what the apiserver stores can be compared. The apiserver's own defaulting, which podgate
does not print, is left out: canonical quantities ("0.5" -> "500m"), probe fields, and the labels the Job
strategy gives a Job's template."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

TEMPLATE_PATHS = {
    "Pod": (),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
DEFAULT_TEMPLATE_PATH = ("spec", "template")
JOB_LABELS = {
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
}
PROBE_KINDS = ("livenessProbe", "readinessProbe", "startupProbe")
PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)")


def quantity(value: str | int | float) -> Decimal:
    match = _QUANTITY.fullmatch(str(value))
    assert match and match[2] in _SUFFIXES, f"not a quantity: {value!r}"
    return (Decimal(match[1]) * _SUFFIXES[match[2]]).normalize()


def template(obj: dict[str, Any]) -> dict[str, Any]:
    node: Any = obj
    for part in TEMPLATE_PATHS.get(obj["kind"], DEFAULT_TEMPLATE_PATH):
        node = node[part]
    return dict(node)


def touched(obj: dict[str, Any]) -> dict[str, Any]:
    """Labels, preset annotations, tolerations, volumes and each container's resources, probes and env."""
    pod = template(obj)
    job = obj["kind"] == "Job"
    metadata, spec = pod.get("metadata") or {}, pod["spec"]
    containers = [*(spec.get("initContainers") or []), *spec["containers"]]
    return {
        "labels": {k: v for k, v in (metadata.get("labels") or {}).items() if not (job and k in JOB_LABELS)},
        "annotations": {
            k: v for k, v in (metadata.get("annotations") or {}).items() if k.startswith("podpreset.")
        },
        "tolerations": sorted(json.dumps(t, sort_keys=True) for t in spec.get("tolerations") or []),
        # The apiserver's service-account token volume is not podgate's.
        "volumes": sorted(
            v["name"] for v in spec.get("volumes") or [] if not v["name"].startswith("kube-api-access-")
        ),
        "containers": {c["name"]: _container(c) for c in containers},
    }


def _container(container: dict[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    return {
        "resources": {
            kind: {name: str(quantity(q)) for name, q in amounts.items()}
            for kind, amounts in resources.items()
            if amounts and kind in ("requests", "limits")
        },
        # A null probe is absent for the apiserver, so it is here too: the comparison is of what ends up set.
        "probes": {kind: _probe(container[kind]) for kind in PROBE_KINDS if container.get(kind) is not None},
        "env": [_env(e) for e in container.get("env") or []],
        "mounts": sorted(
            m["mountPath"]
            for m in container.get("volumeMounts") or []
            if "serviceaccount" not in m["mountPath"]
        ),
    }


def _probe(probe: dict[str, Any]) -> dict[str, Any]:
    probe = {**PROBE_DEFAULTS, **probe}
    if "httpGet" in probe:
        probe["httpGet"] = {"scheme": "HTTP", **probe["httpGet"]}
    return probe


def _env(var: dict[str, Any]) -> dict[str, Any]:
    source = var.get("valueFrom") or {}
    if "fieldRef" in source:
        source = {"fieldRef": {"apiVersion": "v1", **source["fieldRef"]}}
    if "resourceFieldRef" in source:
        ref = dict(source["resourceFieldRef"])
        ref["divisor"] = str(quantity(ref.get("divisor", "0")))
        source = {"resourceFieldRef": ref}
    return {**var, "valueFrom": source} if source else var
