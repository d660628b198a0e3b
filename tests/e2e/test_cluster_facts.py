"""podgate sees the cluster (issue 18), on the real control plane: a namespace label flips the next
decision, podgate's defaults fit a LimitRange the apiserver enforces, and `podgate audit` finds what
`podgate apply` finds.

These cases need a server that reads the cluster (`--kubeconfig`) and a policy that selects namespaces by
label, which the session's server on the shipped policies/ has not. So this module starts its own: policies/
plus namespace-env.yaml below, registered by a copy of the session's webhook configurations (named
podgate-cluster-facts) that only calls it for namespaces labelled e2e.podgate.io/cluster-facts=true. Those
namespaces also carry podgate.io/ignore=true, which keeps the session's webhooks out of them.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import objects
from tests.e2e.cluster import Cluster
from tests.e2e.podgate import REPO, Server, podgate, pointed_at
from tests.e2e.support import free_port, wait_for

NAMESPACE_POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: labelled-test-defaults
spec:
  description: Namespaces labelled podgate.io/env=test get the test defaults, whatever their name.
  match:
    namespaceSelector:
      matchLabels:
        podgate.io/env: test
  rules:
    - name: guaranteed-resources
      resources:
        defaults:
          cpu: {request: 100m, limit: 100m}
          memory: {request: 256Mi, limit: 256Mi}
"""
SCOPE_LABEL = "e2e.podgate.io/cluster-facts"
# Kept out of the session's webhooks, and in this module's.
GATED = {SCOPE_LABEL: "true", "podgate.io/ignore": "true"}
NAME = "podgate-cluster-facts"


@pytest.fixture(scope="module")
def facts(cluster: Cluster) -> Iterator[Server]:
    """`podgate serve --kubeconfig` on policies/ + namespace-env.yaml, registered for the GATED namespaces."""
    policies = cluster.work / "facts-policies"
    shutil.copytree(REPO / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    (policies / "namespace-env.yaml").write_text(NAMESPACE_POLICY)
    kubeconfig = ("--kubeconfig", str(cluster.plane.kubeconfig))
    server = Server(policies, cluster.certs, free_port(), cluster.work / "facts.log", extra=kubeconfig)
    server.start()
    registered = []
    try:
        # deploy/'s configurations as rendered (calling the Service), pointed at this module's server.
        for configuration in cluster.rendered:
            own = pointed_at(copy.deepcopy(configuration), server.port)
            own["metadata"] = {"name": NAME}
            for webhook in own["webhooks"]:
                webhook["namespaceSelector"] = {"matchLabels": {SCOPE_LABEL: "true"}}
            registered.append(cluster.api.must_create(own))
        probe = cluster.namespace("facts-probe", **GATED)

        def called() -> bool:
            pod = objects.pod(f"probe-{time.monotonic_ns()}", objects.container(resources=objects.REQUESTS))
            cluster.api.create(pod, probe, dry_run=True)
            return any(r.get("namespace") == probe for r in server.reviews())

        wait_for(called, "the apiserver to call the cluster-facts server", timeout=30, interval=0.2)
        yield server
    finally:
        for configuration in registered:
            kind = configuration["kind"]
            cluster.api.request("DELETE", cluster.api.path(kind, configuration["apiVersion"], name=NAME))
        server.stop()


def bare_pod(name: str) -> dict[str, Any]:
    return objects.pod(name, objects.container())


def test_labelling_a_namespace_flips_the_next_decision(cluster: Cluster, facts: Server) -> None:
    namespace = cluster.namespace("facts-flip", **GATED)
    refused = cluster.api.create(bare_pod("web"), namespace)
    assert refused.status == 403
    assert 'requests-required.cpu-and-memory: container "app" is missing cpu and memory requests' in (
        refused.message
    )

    cluster.kubectl("label", "namespace", namespace, "podgate.io/env=test")
    labelled = time.monotonic()
    created = wait_for(
        lambda: (r := cluster.api.create(bare_pod("web"), namespace)).status == 201 and r,
        "the pod to be admitted after the namespace was labelled",
        timeout=10,
        interval=0.1,
    )
    flipped_in = time.monotonic() - labelled
    resources = created.body["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "100m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    print(f"\ncluster-facts: decision flipped {flipped_in:.2f} s after the label")
    assert flipped_in < 5


LIMIT_RANGE = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "small"},
    "spec": {
        "limits": [{"type": "Container", "max": {"memory": "128Mi"}, "maxLimitRequestRatio": {"cpu": "2"}}]
    },
}


def test_defaults_fit_a_limit_range_with_a_low_max(cluster: Cluster, facts: Server, tmp_path: Path) -> None:
    namespace = cluster.namespace("facts-lr-test", **GATED)  # *-test: the test defaults apply
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(LIMIT_RANGE))
    pod = objects.pod("shop", objects.container(resources={"requests": {"cpu": "10m"}}))

    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod))
    # podgate's defaults as they were, without the LimitRange: the apiserver refuses them after the webhook.
    unfitted = podgate("apply", "-f", str(manifest), "-n", namespace, "--policies", str(facts.policies),
                       "-o", "json")  # fmt: skip
    assert unfitted.returncode == 0, unfitted.stderr
    refused = cluster.api.create(json.loads(unfitted.stdout), namespace, dry_run=True)
    assert refused.status == 403
    assert refused.message.endswith(
        "maximum memory usage per Container is 128Mi, but limit is 256Mi, cpu max limit to request ratio "
        "per Container is 2, but provided ratio is 10.000000]"
    )

    # Once the cache has the LimitRange: its defaults first (memory), podgate's fitted to its ratio (cpu).
    def admitted() -> Any:
        reply = cluster.api.create(pod, namespace)
        return reply.status == 201 and reply

    created = wait_for(admitted, "the pod to be admitted with fitted defaults", timeout=10)
    assert created.body["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "20m", "memory": "128Mi"},
        "requests": {"cpu": "10m", "memory": "128Mi"},
    }
    explained = podgate("apply", "-f", str(manifest), "-n", namespace, "--policies", str(facts.policies),
                        "--explain", "--kubeconfig", str(cluster.plane.kubeconfig))  # fmt: skip
    assert (
        'container "app": cpu limit set to 20m, not the default 100m: '
        "LimitRange small's maxLimitRequestRatio is 2 and the request is 10m"
    ) in explained.stderr


def manifests(count: int) -> list[dict[str, Any]]:
    """A mix that every policy has something to say about: pods with and without requests and labels,
    Deployments whose pods their controller creates (and audit must not judge twice)."""
    made: list[dict[str, Any]] = []
    for index in range(count):
        requests = objects.REQUESTS if index % 2 else None
        labels = {"app.kubernetes.io/env": "prod"} if index % 3 == 0 else None
        container = objects.container(resources=requests, port=8080 if index % 5 == 0 else None)
        if index % 6 == 0:
            made.append(objects.deployment(f"deploy-{index:03d}", container, labels=labels))
        else:
            made.append(objects.pod(f"pod-{index:03d}", container, labels=labels))
    return made


def verdicts_of_apply(stderr: str, source: str, made: list[dict[str, Any]]) -> dict[Any, Any]:
    """`podgate apply`'s report per object: admitted or not, and its violations ("policy.rule: message").

    The shipped policies have enforce and audit rules only, reported as "  denied:" and "  audit:" lines;
    "  warning:" lines are mutation warnings, which are no violation.
    """
    found: dict[tuple[str, str], tuple[bool, list[str]]] = {}
    current: tuple[str, str] | None = None
    for line in stderr.splitlines():
        if line.startswith(f"{source}#"):
            index, _, verdict = line[len(source) + 1 :].partition(": ")
            obj = made[int(index) - 1]
            current = (obj["kind"], obj["metadata"]["name"])
            found[current] = (verdict.startswith("admitted"), [])
        elif current is not None and line.startswith(("  denied: ", "  audit: ")):
            found[current][1].append(line.strip().partition(": ")[2])
    return {key: (allowed, sorted(violations)) for key, (allowed, violations) in found.items()}


def test_audit_finds_what_apply_finds(cluster: Cluster, facts: Server, tmp_path: Path) -> None:
    # No webhook in this namespace: what is stored is what was sent, so some of it breaks the policies.
    namespace = cluster.namespace("facts-audit", **{"podgate.io/ignore": "true"})
    made = manifests(300)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": made}))
    cluster.kubectl("create", "-n", namespace, "-f", str(listed))
    # The Deployments' ReplicaSets and pods exist too: audit judges the Deployments, not them.
    wait_for(
        lambda: len(cluster.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()) == 300,
        "the 250 pods and one pod per Deployment",
        timeout=60,
        interval=0.5,
    )

    flags = ("--policies", str(facts.policies), "--kubeconfig", str(cluster.plane.kubeconfig))
    started = time.monotonic()
    audited = podgate("audit", "-n", namespace, "-o", "json", *flags)
    seconds = time.monotonic() - started
    assert audited.returncode == 1, audited.stderr
    report = json.loads(audited.stdout)
    assert report["summary"]["objects"] == 300
    assert {v["action"] for o in report["objects"] for v in o["violations"]} == {"enforce", "audit"}
    from_audit = {
        (o["kind"], o["name"]): (
            o["verdict"] != "denied",
            sorted(f"{v['policy']}.{v['rule']}: {v['message']}" for v in o["violations"]),
        )
        for o in report["objects"]
    }

    stream = tmp_path / "manifests.yaml"
    stream.write_text(yaml.safe_dump_all(made))
    applied = podgate("apply", "-f", str(stream), "-n", namespace, *flags)
    assert applied.returncode == 1, applied.stderr
    assert from_audit == verdicts_of_apply(applied.stderr, str(stream), made)
    denied = sum(1 for allowed, _ in from_audit.values() if not allowed)
    print(f"\ncluster-facts: audit of {len(from_audit)} objects ({denied} denied) took {seconds:.1f} s")
    assert 0 < denied < len(from_audit)
