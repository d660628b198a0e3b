"""`podgate apply` against the real apiserver, over the manifests in manifests/ (issue 15 faults 5 and 7).

For each manifest: `podgate apply -o json` (its prediction, offline) and the apiserver's server-side dry run
of the same manifest (what the cluster does, webhooks included). They must agree on the verdict and, when
both admit it, on every field podgate changes.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Cluster
from tests.e2e.compare import touched
from tests.e2e.podgate import POLICIES, podgate
from tests.e2e.support import ensure

MANIFESTS = sorted((Path(__file__).parent / "manifests").glob("*.yaml"))
NAMESPACE = "e2e-parity"


@dataclass(frozen=True)
class Outcome:
    verdict: str  # admitted, denied (by podgate), invalid (by the apiserver), error (podgate apply exit 2)
    obj: dict[str, Any] | None
    detail: str
    warnings: tuple[str, ...] = ()  # the apiserver's, from its Warning headers


def predicted(manifest: Path) -> Outcome:
    result = podgate("apply", "--policies", str(POLICIES), "-n", NAMESPACE, "-o", "json", "-f", str(manifest))
    verdicts = {0: "admitted", 1: "denied", 2: "error"}
    ensure(result.returncode in verdicts, f"podgate apply -f {manifest.name}: {result.stderr}")
    obj = json.loads(result.stdout) if result.stdout.strip() else None
    return Outcome(verdicts[result.returncode], obj, result.stderr)


def served(cluster: Cluster, manifest: Path) -> Outcome:
    response = cluster.api.create(yaml.safe_load(manifest.read_text()), NAMESPACE, dry_run=True)
    verdicts = {201: "admitted", 403: "denied", 422: "invalid"}
    ensure(response.status in verdicts, f"{manifest.name}: {response.status} {response.message}")
    obj = response.body if response.status == 201 else None
    return Outcome(verdicts[response.status], obj, response.message, tuple(response.warnings))


@pytest.fixture(scope="module")
def outcomes(cluster: Cluster) -> dict[str, tuple[Outcome, Outcome]]:
    cluster.namespace(NAMESPACE)
    # Two `podgate apply` processes at a time, while this thread runs the dry runs.
    with ThreadPoolExecutor(max_workers=2) as pool:
        predictions = pool.map(predicted, MANIFESTS)
        by_cluster = [served(cluster, m) for m in MANIFESTS]
        return {m.name: (p, c) for m, p, c in zip(MANIFESTS, predictions, by_cluster, strict=True)}


# Issue 15 fault 5 was three of these (null resources: and livenessProbe:), fault 4 one (pod-level resources).
@pytest.mark.parametrize("manifest", [pytest.param(m.name, id=m.stem) for m in MANIFESTS])
def test_apply_agrees_with_the_apiserver(outcomes: dict[str, tuple[Outcome, Outcome]], manifest: str) -> None:
    """The same verdict; and for an admitted object, the same fields where podgate changes anything."""
    prediction, cluster = outcomes[manifest]
    assert prediction.verdict == cluster.verdict, (
        f"podgate apply: {prediction.detail}\napiserver: {cluster.detail}"
    )
    if cluster.verdict == "admitted":
        assert prediction.obj is not None and cluster.obj is not None, prediction.detail
        assert touched(prediction.obj) == touched(cluster.obj)


# Issue 15 fault 5, fixed: podgate apply prints denied objects on stdout.
def test_apply_prints_no_denied_object(outcomes: dict[str, tuple[Outcome, Outcome]]) -> None:
    denied = [name for name, (prediction, _) in outcomes.items() if prediction.verdict == "denied"]
    ensure(denied, "no manifest is denied")
    printed = [name for name in denied if outcomes[name][0].obj is not None]
    assert printed == []


# Issue 15 fault 5, fixed: podgate apply -n overrides the namespace the manifest names.
def test_apply_refuses_a_namespace_flag_that_contradicts_the_manifest(cluster: Cluster) -> None:
    manifest = cluster.work / "namespaced-pod.yaml"
    obj = yaml.safe_load((Path(__file__).parent / "manifests" / "pod-nginx-requests.yaml").read_text())
    obj["metadata"]["namespace"] = "team-a"
    manifest.write_text(yaml.safe_dump(obj))
    # What kubectl does: the object's own namespace stands, and a conflicting -n is an error.
    kubectl = cluster.kubectl("create", "--dry-run=server", "-n", NAMESPACE, "-f", str(manifest), check=False)
    ensure(kubectl.returncode == 1 and "does not match the namespace" in kubectl.stderr, kubectl.stderr)
    result = podgate("apply", "--policies", str(POLICIES), "-n", NAMESPACE, "-f", str(manifest))
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr}"


# Issue 15 fault 7, fixed: nearly every ordinary manifest was warned about its missing
# app.kubernetes.io/env label.
def test_warnings_are_the_exception(outcomes: dict[str, tuple[Outcome, Outcome]]) -> None:
    """Count, as the apiserver returns them, the manifests that come back with a warning. A warning must be
    something its reader should act on: on ordinary manifests it must stay the exception."""
    warned = {name: cluster.warnings for name, (_, cluster) in outcomes.items() if cluster.warnings}
    reasons = Counter(w.split(":", 1)[0] for warnings in warned.values() for w in set(warnings))
    summary = f"{len(warned)} of {len(outcomes)} manifests warned; warnings by rule: {dict(reasons)}"
    print(summary)
    assert len(warned) <= len(outcomes) // 4, summary
