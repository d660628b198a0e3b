"""The server's cluster facts: list + watch kept in a cache, relisting after errors, readiness, the gate."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POLICIES, fixture_review, policy_text
from webhook.errors import PolicyError, SettingsError
from webhook.server import cluster
from webhook.server.app import create_app
from webhook.server.cluster import ClusterCache, ClusterGate, require_access
from webhook.server.metrics import Metrics
from webhook.server.reload import PolicySource
from webhook.server.settings import Settings

SELECTING = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: strict}
spec:
  match: {namespaceSelector: {matchLabels: {podgate.io/defaults: strict}}}
  rules: [{name: requests, requireRequests: {}}]
"""


class Obj:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.body))


class Listed(list[Obj]):
    resourceVersion = "7"


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


class FakeApi:
    """Lists what `objects` holds; each watch yields what the test puts on `events` (an Exception ends it)."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {"Namespace": [], "LimitRange": []}
        self.events: dict[str, queue.Queue[Any]] = {"Namespace": queue.Queue(), "LimitRange": queue.Queue()}
        self.lists: list[str] = []
        self.watched_from: list[str | None] = []

    def list(self, resource: Any, **kwargs: Any) -> Listed:
        self.lists.append(resource.__name__)
        return Listed(Obj(o) for o in self.objects[resource.__name__])

    def watch(self, resource: Any, *, resource_version: str | None = None, **kwargs: Any) -> Iterator[Any]:
        self.watched_from.append(resource_version)
        while True:
            event = self.events[resource.__name__].get()
            if isinstance(event, Exception):
                raise event
            yield event[0], Obj(event[1])

    def get(self, resource: Any, name: str) -> Obj:
        found = [o for o in self.objects["Namespace"] if o["metadata"]["name"] == name]
        if not found:
            raise LookupError(f"namespaces {name!r} not found")
        return Obj(found[0])


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(cluster, "connect", lambda config, timeout=10.0: fake)
    monkeypatch.setattr(cluster, "BACKOFF", (0.01,))
    return fake


def test_the_cache_lists_then_follows_the_watch(api: FakeApi) -> None:
    api.objects["Namespace"] = [namespace("shop", env="prod"), namespace("gone")]
    cache = ClusterCache(object())  # type: ignore[arg-type]
    assert cache.problems() == ["namespaces not synced yet", "limitranges not synced yet"]
    cache.start()
    eventually(cache.synced)
    assert cache.problems() == []
    assert dict(cache.facts().labels_of("shop") or {}) == {
        "env": "prod",
        "kubernetes.io/metadata.name": "shop",
    }
    assert api.watched_from == ["7", "7"]

    api.events["Namespace"].put(("MODIFIED", namespace("shop", env="test")))
    eventually(lambda: (cache.facts().labels_of("shop") or {}).get("env") == "test")
    limits = {
        "metadata": {"name": "low", "namespace": "shop"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
    }
    api.events["LimitRange"].put(("ADDED", limits))
    eventually(lambda: [r.name for r in cache.facts().limit_ranges_of("shop")] == ["low"])


def test_a_broken_watch_lists_again_and_drops_what_was_deleted_meanwhile(api: FakeApi) -> None:
    api.objects["Namespace"] = [namespace("shop"), namespace("gone")]
    cache = ClusterCache(object(), limit_ranges=False)  # type: ignore[arg-type]
    cache.start()
    eventually(cache.synced)
    assert cache.facts().labels_of("gone") is not None
    api.objects["Namespace"] = [namespace("shop")]  # deleted while nobody watched, e.g. after 410 Gone
    api.events["Namespace"].put(RuntimeError("too old resource version: 7 (9)"))
    eventually(lambda: cache.facts().labels_of("gone") is None)
    assert api.lists == ["Namespace", "Namespace"]


def test_a_namespace_new_to_the_cache_is_looked_up_once(api: FakeApi) -> None:
    cache = ClusterCache(object(), limit_ranges=False)  # type: ignore[arg-type]
    cache.start()
    eventually(cache.synced)
    api.objects["Namespace"] = [namespace("fresh", env="test")]
    assert (cache.facts_for("fresh").labels_of("fresh") or {}).get("env") == "test"
    assert cache.facts_for("missing").labels_of("missing") is None
    api.objects["Namespace"].append(namespace("missing"))
    # A failed lookup is not repeated at once: every review in that namespace would wait on it.
    assert cache.facts_for("missing").labels_of("missing") is None


def test_readyz_waits_for_the_cache(api: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(SELECTING)
    source = PolicySource(tmp_path)
    source.poll()
    cache = ClusterCache(object(), limit_ranges=False)  # type: ignore[arg-type]
    app = create_app(source, replace(Settings()), metrics=Metrics(), cluster=cache).test_client()
    reply = app.get("/readyz")
    assert reply.status_code == 503
    assert reply.get_json()["problems"] == ["namespaces not synced yet"]
    api.objects["Namespace"] = [namespace("capture-demo", **{"podgate.io/defaults": "strict"})]
    cache.start()
    eventually(cache.synced)
    assert app.get("/readyz").status_code == 200
    review = fixture_review("0002")
    reply = app.post("/validate", data=json.dumps(review), content_type="application/json")
    assert reply.get_json()["response"]["allowed"] is False


def test_the_gate_starts_no_client_when_nothing_asks_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "load_config", lambda *a: pytest.fail("no cluster must be configured"))
    gate = ClusterGate(None, None, environ={})
    assert gate.decide(policy_text((POLICIES / "resources.yaml").read_text())) is None
    # Decided: a reload that brings a namespaceSelector does not load.
    with pytest.raises(PolicyError) as caught:
        gate.check(policy_text(SELECTING, "p.yaml"))
    assert [str(i) for i in caught.value.issues] == [
        "p.yaml:1: spec: namespaceSelector needs namespace labels, but podgate serve has no cluster to "
        "read them from: give --kubeconfig, or run it in a cluster with its service account token "
        "(docs/cluster.md)"
    ]


def test_a_policy_that_needs_labels_without_a_cluster_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(kubeconfig: Path | None, context: str | None) -> Any:
        raise SettingsError("no cluster configuration: Configuration file ~/.kube/config not found")

    monkeypatch.setattr(cluster, "load_config", missing)
    with pytest.raises(SettingsError) as caught:
        ClusterGate(None, None, environ={}).decide(policy_text(SELECTING))
    assert str(caught.value) == (
        "policy strict selects namespaces by label, so podgate serve needs a cluster (--kubeconfig, or its "
        "service account in a pod): no cluster configuration: Configuration file ~/.kube/config not found"
    )


def test_a_kubeconfig_or_a_mounted_token_turns_the_cache_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cluster, "load_config", lambda kubeconfig, context: object())
    policies = policy_text((POLICIES / "resources.yaml").read_text())
    assert ClusterGate(tmp_path / "kubeconfig", None, environ={}).decide(policies) is not None
    (tmp_path / "token").write_text("t")
    monkeypatch.setattr(cluster, "SERVICE_ACCOUNT", tmp_path)
    assert cluster.in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)
    assert not cluster.in_cluster({}, tmp_path)
    assert require_access(policies, cache=None) is policies
