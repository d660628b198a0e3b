"""Policies changed under a running server (issue 15 faults 2 and 3).

The cases break policies, so they run a second `podgate serve` of their own on a copy of policies/, never
the session's server. It is registered (validating only, failing closed) for one namespace that the
session's registration skips, so the real apiserver shows whether it still enforces.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.e2e.cluster import Cluster, Response
from tests.e2e.objects import container, pod
from tests.e2e.podgate import POLICIES, Server, podgate, pointed_at
from tests.e2e.support import ensure, free_port, wait_for

NAMESPACE = "e2e-scratch"
SCRATCH_WEBHOOK = "validate.scratch.podgate.io"
RELOAD_INTERVAL = 0.2


@pytest.fixture(scope="module")
def port(cluster: Cluster) -> Iterator[int]:
    """The scratch servers' port, and a registration calling it for NAMESPACE only."""
    port = free_port()
    cluster.namespace(NAMESPACE, **{"podgate.io/ignore": "true", "e2e.podgate.io/server": "scratch"})
    (validating,) = (c for c in cluster.rendered if c["kind"] == "ValidatingWebhookConfiguration")
    registration = pointed_at(validating, port)
    registration["metadata"] = {"name": "podgate-scratch"}
    (webhook,) = registration["webhooks"]
    webhook["name"] = SCRATCH_WEBHOOK
    webhook["namespaceSelector"] = {"matchLabels": {"e2e.podgate.io/server": "scratch"}}
    cluster.api.must_create(registration)
    yield port
    path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/podgate-scratch"
    cluster.api.request("DELETE", path)


@pytest.fixture
def scratch(cluster: Cluster, port: int) -> Iterator[Server]:
    """A server on a fresh copy of the shipped policies, polling them every RELOAD_INTERVAL."""
    work = cluster.work / f"scratch-{time.monotonic_ns()}"
    policies = work / "policies"
    policies.mkdir(parents=True)
    for policy in POLICIES.glob("*.yaml"):
        shutil.copyfile(policy, policies / policy.name)
    server = Server(
        policies, cluster.certs, port, work / "podgate.log", extra=("--reload-interval", str(RELOAD_INTERVAL))
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def enforcing(cluster: Cluster, scratch: Server) -> Server:
    """The scratch server, once the apiserver has shown that it calls it and it denies a bare pod."""
    wait_for(lambda: denied_by_scratch(bare_pod(cluster)), "the scratch server to deny a bare pod")
    return scratch


def bare_pod(cluster: Cluster) -> Response:
    return cluster.api.create(pod("bare", container()), NAMESPACE, dry_run=True)


def denied_by_scratch(response: Response) -> bool:
    return response.status == 403 and SCRATCH_WEBHOOK in response.message


def settle(server: Server) -> None:
    """Until the server has looked at its policies again: its next reload line, or 10 intervals at most
    (a server that logs nothing when it keeps its policies must not fail the case by silence)."""
    before = len(reload_lines(server))
    deadline = time.monotonic() + 10 * RELOAD_INTERVAL
    while len(reload_lines(server)) == before and time.monotonic() < deadline:
        time.sleep(RELOAD_INTERVAL / 2)


def reload_lines(server: Server) -> list[str]:
    return [
        line for line in server.log.read_text().splitlines() if '"podgate.reload"' in line and "polic" in line
    ]


def metric(server: Server, name: str) -> list[float]:
    """Every sample of a metric in /metrics (one per label set)."""
    status, text = server.get("/metrics")
    ensure(status == 200, f"/metrics: {status} {text}")
    return [float(m[1]) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)]


# -- fault 2: an empty policy set is an error ----------------------------------------------------------------


# Issue 15 fault 2, fixed: a policy file emptied under a running server turns enforcement off.
def test_an_emptied_policy_file_keeps_the_last_good_set(cluster: Cluster, enforcing: Server) -> None:
    (enforcing.policies / "resources.yaml").write_text("")
    settle(enforcing)
    response = bare_pod(cluster)
    assert denied_by_scratch(response), f"{response.status} {response.message}"


# Issue 15 fault 2, fixed: a policy directory emptied under a running server turns enforcement off.
def test_an_emptied_policy_directory_keeps_the_last_good_set(cluster: Cluster, enforcing: Server) -> None:
    for policy in enforcing.policies.iterdir():
        policy.unlink()
    settle(enforcing)
    response = bare_pod(cluster)
    assert denied_by_scratch(response), f"{response.status} {response.message}"


# Issue 15 fault 2, fixed: podgate serve starts ready on an empty policy directory.
def test_serve_is_not_ready_on_an_empty_policy_directory(cluster: Cluster, port: int) -> None:
    empty = cluster.work / "empty-policies"
    empty.mkdir(exist_ok=True)
    server = Server(empty, cluster.certs, port, cluster.work / "empty-policies.log")
    server.start(wait=False)
    try:
        wait_for(lambda: server.exited() or server.get("/readyz")[0] != 0, "podgate serve to answer or exit")
        assert not server.ready(), server.get("/readyz")[1]
    finally:
        server.stop()


# Issue 15 fault 2, fixed: podgate check passes an empty policy directory.
def test_check_fails_on_an_empty_policy_directory(cluster: Cluster) -> None:
    empty = cluster.work / "empty-policies"
    empty.mkdir(exist_ok=True)
    result = podgate("check", "--policies", str(empty))
    ensure("Traceback" not in result.stderr, result.stderr)
    assert result.returncode != 0, result.stdout


# -- fault 3: a failed reload leaves a lasting signal --------------------------------------------------------


# Issue 15 fault 3, fixed: no gauge says that the policies on disk do not load.
def test_a_failed_reload_is_a_gauge_until_the_files_load_again(scratch: Server) -> None:
    labels = scratch.policies / "labels.yaml"
    good = labels.read_text()
    loaded_at = metric(scratch, "podgate_policy_last_success_timestamp_seconds")
    assert loaded_at and loaded_at[0] > 0
    labels.write_text("apiVersion: [\n")
    settle(scratch)
    assert metric(scratch, "podgate_policy_reload_failing") == [1]
    assert metric(scratch, "podgate_policy_last_success_timestamp_seconds") == loaded_at
    labels.write_text(good + "\n# edited\n")
    settle(scratch)
    assert metric(scratch, "podgate_policy_reload_failing") == [0]
    assert metric(scratch, "podgate_policy_last_success_timestamp_seconds")[0] > loaded_at[0]


# Issue 15 fault 3, fixed: podgate_policy_set_info keeps a series for every digest ever loaded.
def test_only_the_policy_set_being_served_is_reported(scratch: Server) -> None:
    labels = scratch.policies / "labels.yaml"
    labels.write_text(labels.read_text() + "\n# edited\n")
    settle(scratch)
    serving = json.loads(scratch.get("/readyz")[1])["policySet"]
    _, text = scratch.get("/metrics")
    assert re.findall(r'^podgate_policy_set_info\{.*digest="(\w+)"', text, re.MULTILINE) == [serving]
