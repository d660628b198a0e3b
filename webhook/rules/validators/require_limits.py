"""Require resource limits on every container, or on the whole pod, naming each container and what it lacks.

A pod-level limit (spec.resources.limits, Kubernetes 1.34+ pod-level resources) satisfies the
requirement for its resource: the kubelet enforces it on the pod's cgroup, which every container,
init containers included, runs inside of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Locator
from webhook.rules.validators import required
from webhook.rules.validators.required import Params

KEY = "requireLimits"
# Memory only by default: a cpu limit throttles a container even on an idle node.
DEFAULT = ("memory",)
SCHEMA = required.schema("limit", "memory: a cpu limit throttles even on an idle node")


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    return required.parse(raw, DEFAULT)


def check(pod: PodView, params: Params, request: AdmissionRequest) -> list[str]:
    return required.missing(pod, params, "limits", budgeted_by=("limits",), name_pod_level=True)
