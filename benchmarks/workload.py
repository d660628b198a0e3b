"""The AdmissionReviews the benchmarks send, grown from captured ones so they stay what an apiserver sends.

- mutate: fixture 0011 (a pod CREATE at /mutate, two containers, one without requests) with its
  containers repeated to the wanted count, each with a unique name, and the label
  `app.kubernetes.io/env: test`, so every default policy acts and the answer carries a patch;
- validate, compliant: fixture 0012 (the same pod at /validate, with the uid and timestamp the
  apiserver adds by then) grown the same way, carrying podgate's own patch, as the apiserver sends it
  after the mutating phase: every validation passes;
- validate, denied: fixture 0012 as captured (no test label, a container without requests).

The nginx containers get a port named `http`, as a web server declares one; the probes policy then
injects probes instead of only warning. Each body gets its own uid and one of a few namespaces in
rotation, so no cache keyed on bytes or namespace can flatter the figures.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

import benchlib
import jsonpatch

from webhook import evaluate, load_policies
from webhook.kube import jsoncodec
from webhook.policy.model import PolicySet

NAMESPACES = ("shop", "payments", "search", "checkout", "ledger")
TEST_LABELS = {"app.kubernetes.io/env": "test"}
HTTP_PORT = {"name": "http", "containerPort": 80, "protocol": "TCP"}


def _load(prefix: str) -> dict[str, Any]:
    review: dict[str, Any] = jsoncodec.loads(benchlib.fixture(prefix).read_bytes())
    return review


def _grow(review: dict[str, Any], containers: int, namespace: str) -> dict[str, Any]:
    """`review` with its pod's containers repeated up to `containers`, test-labelled, in `namespace`."""
    grown = copy.deepcopy(review)
    request = grown["request"]
    request["uid"] = str(uuid.uuid4())
    request["namespace"] = namespace
    pod = request["object"]
    pod["metadata"]["namespace"] = namespace
    pod["metadata"].setdefault("labels", {}).update(TEST_LABELS)
    originals = pod["spec"]["containers"]
    grown_containers = []
    for index, base in zip(range(containers), itertools.cycle(originals), strict=False):
        container = copy.deepcopy(base)
        lap = index // len(originals)
        if lap:
            container["name"] = f"{base['name']}-{lap + 1}"
        if container["image"].startswith("nginx"):
            container.setdefault("ports", [dict(HTTP_PORT)])
        grown_containers.append(container)
    pod["spec"]["containers"] = grown_containers
    return grown


def mutate_review(containers: int, namespace: str = NAMESPACES[0]) -> dict[str, Any]:
    return _grow(_load("0011"), containers, namespace)


def validate_review(containers: int, policies: PolicySet, namespace: str = NAMESPACES[0]) -> dict[str, Any]:
    """The same pod at /validate, after podgate's mutation, as the apiserver would send it."""
    mutated = evaluate(policies, mutate_review(containers, namespace)["request"])
    review = _grow(_load("0012"), containers, namespace)
    patch = [dict(op) for op in mutated.patch]
    review["request"]["object"] = jsonpatch.apply_patch(review["request"]["object"], patch)
    return review


def denied_review(namespace: str = NAMESPACES[0]) -> dict[str, Any]:
    review = _load("0012")
    review["request"]["uid"] = str(uuid.uuid4())
    review["request"]["namespace"] = namespace
    review["request"]["object"]["metadata"]["namespace"] = namespace
    return review


def bodies(kind: str, containers: int = 3, policies: PolicySet | None = None) -> list[bytes]:
    """One encoded body per namespace in rotation: `kind` is mutate, validate (compliant) or denied."""
    shipped = policies or load_policies(benchlib.POLICIES)
    made: list[dict[str, Any]] = []
    for namespace in NAMESPACES:
        if kind == "mutate":
            made.append(mutate_review(containers, namespace))
        elif kind == "validate":
            made.append(validate_review(containers, shipped, namespace))
        elif kind == "denied":
            made.append(denied_review(namespace))
        else:
            raise ValueError(f"unknown review kind {kind!r}")
    return [jsoncodec.dumps(review) for review in made]
