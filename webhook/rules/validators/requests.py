"""Require resource requests on every container, naming each container and what it lacks.

A resource the pod requests at pod level (spec.resources, Kubernetes 1.34+) is requested for all its
containers: the scheduler reserves the pod-level value, and a pod-level limit alone makes the apiserver
default the pod-level request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Locator
from webhook.rules.validators import required
from webhook.rules.validators.required import Params

KEY = "requireRequests"
DEFAULT = ("cpu", "memory")
SCHEMA = required.schema("request", "cpu and memory")


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    return required.parse(raw, DEFAULT)


def check(pod: PodView, params: Params, request: AdmissionRequest) -> list[str]:
    return required.missing(pod, params, "requests", budgeted_by=("requests", "limits"), name_pod_level=False)
