"""`podgate audit`: what is listed, what is judged (owners only), the three outputs, and exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.conftest import POLICIES
from webhook.cli import audit, main
from webhook.server import cluster

RESOURCES = str(POLICIES / "resources.yaml")


@dataclass
class Obj:
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.body))


def pod(name: str, namespace: str = "shop", requests: bool = False, owner: str = "") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx"}
    if requests:
        container["resources"] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if owner:
        metadata["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}", "controller": True}
        ]
    metadata["managedFields"] = [{"manager": "kubectl"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [container]},
        "status": {},
    }


REPLICASET = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-web-1"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod("t", requests=True)["spec"]},
    },
}
CLUSTER = {
    "Namespace": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}}
    ],
    "LimitRange": [],
    "Pod": [
        pod("bare"),
        pod("ok", requests=True),
        pod("web-1-abc", owner="web-1"),
        pod("orphan", owner="gone"),
    ],
    "ReplicaSet": [REPLICASET],
}


class FakeClient:
    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects, self.calls = objects, []

    def list(
        self, resource: Any, *, namespace: str | None = None, chunk_size: int = 0, labels: Any = None
    ) -> list[Obj]:
        kind = resource.__name__
        self.calls.append((kind, namespace, chunk_size, labels))
        found = self.objects.get(kind, [])
        if namespace not in (None, "*"):
            found = [o for o in found if o["metadata"].get("namespace") == namespace]
        return [Obj(o) for o in found]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient(CLUSTER)

    @dataclass
    class Config:
        namespace: str = "shop"

    monkeypatch.setattr(cluster, "load_config", lambda kubeconfig, context: Config())
    monkeypatch.setattr(cluster, "connect", lambda config, timeout=10.0: client)
    return client


def test_the_table_names_what_would_be_denied_and_owners_speak_for_their_pods(
    fake: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--policies", RESOURCES]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "NAMESPACE  KIND  NAME    VERDICT  POLICIES",
        "shop       Pod   bare    denied   requests-required",
        "shop       Pod   orphan  denied   requests-required",
    ]
    assert err.splitlines()[-1].startswith("audited 4 objects in namespace shop in ")
    assert err.splitlines()[-1].endswith("s: 2 admitted, 0 warned, 2 denied")
    assert {(kind, namespace) for kind, namespace, _, _ in fake.calls} >= {
        ("Pod", "shop"),
        ("Namespace", None),
    }
    assert all(size == 500 for kind, _, size, _ in fake.calls)


def test_json_holds_every_object_judged(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "-A", "--policies", RESOURCES, "-o", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["summary"] == {"objects": 4, "admitted": 2, "warned": 0, "denied": 2}
    verdicts = {(o["kind"], o["name"]): o["verdict"] for o in document["objects"]}
    assert verdicts == {("ReplicaSet", "web-1"): "admitted", ("Pod", "bare"): "denied",
                        ("Pod", "ok"): "admitted", ("Pod", "orphan"): "denied"}  # fmt: skip


def test_policy_reports_one_per_namespace(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--policies", RESOURCES, "-o", "policyreport"]) == 1
    (report,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert (report["apiVersion"], report["kind"], report["metadata"]["namespace"]) == (
        "wgpolicyk8s.io/v1alpha2", "PolicyReport", "shop")  # fmt: skip
    assert report["summary"] == {"pass": 2, "fail": 2, "warn": 0, "error": 0, "skip": 0}
    failed = [r for r in report["results"] if r["result"] == "fail"]
    assert failed[0]["resources"] == [
        {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "bare", "uid": "uid-bare"}
    ]
    assert failed[0]["properties"] == {"action": "enforce"}
    assert set(failed[0]) == {
        "source",
        "policy",
        "rule",
        "result",
        "scored",
        "timestamp",
        "resources",
        "message",
        "properties",
    }


def test_label_selectors_are_read_as_kubectl_reads_them() -> None:
    pairs = audit.parse_label_selector("app=web, tier!=db,env in (a, b),!legacy,team,x==y")
    from lightkube.core.selector import build_selector

    assert build_selector(pairs) == "app=web,tier!=db,env in (a,b),!legacy,team,x=y"
    with pytest.raises(ValueError) as caught:
        audit.parse_label_selector("app in web")
    assert (
        str(caught.value) == "-l 'app in web': cannot read 'app in web' (e.g. app=web,tier in (a,b),!legacy)"
    )


def test_an_unreachable_cluster_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Refusing(FakeClient):
        def list(self, resource: Any, **kwargs: Any) -> list[Obj]:
            raise ConnectionError("connection refused")

    monkeypatch.setattr(
        cluster, "load_config", lambda kubeconfig, context: type("C", (), {"namespace": None})()
    )
    monkeypatch.setattr(cluster, "connect", lambda config, timeout=10.0: Refusing({}))
    assert main(["audit", "--policies", RESOURCES]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: cannot list Deployments: connection refused"
