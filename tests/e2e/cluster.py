"""The loopback control plane of ../shared/k8s (kube-apiserver, kube-controller-manager, etcd), a small
client for its REST API and for kubectl, and `Cluster`: what every case gets, the control plane with the
podgate server its webhooks call.

The REST client is used where a test needs what kubectl hides (the HTTP status, each admission warning,
the exact error message) and where many requests must stay cheap; kubectl is used where the test is about
what a user types (`--dry-run=server`, `apply --server-side`, `scale`, `label`).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import ssl
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from tests.e2e import objects
from tests.e2e.podgate import Server
from tests.e2e.support import Broken, ensure, free_port, wait_for

# Plural resource names of the kinds the suite creates (the REST path needs them).
PLURALS = {
    "Pod": "pods",
    "Namespace": "namespaces",
    "Node": "nodes",
    "Event": "events",
    "ReplicationController": "replicationcontrollers",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
}
# A gated namespace for the probe requests that show the apiserver calls podgate.
PROBE_NAMESPACE = "e2e-probe"
CLUSTER_SCOPED = {"Namespace", "Node", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    # The Warning headers (RFC 7234, code 299), which is how the apiserver passes admission warnings on.
    warnings: list[str]

    @property
    def message(self) -> str:
        """The error message of a failed request (a metav1.Status), or ""."""
        return str(self.body.get("message", "")) if self.body.get("kind") == "Status" else ""


_WARNING = re.compile(r'^\d{3} \S+ "(?P<text>(?:[^"\\]|\\.)*)"')


def _warning_text(header: str) -> str:
    match = _WARNING.match(header)
    return re.sub(r"\\(.)", r"\1", match["text"]) if match else header


@dataclass
class Api:
    """The kube-apiserver's REST API as the admin user (a static token, group system:masters)."""

    port: int
    token: str = field(repr=False)
    ca_file: Path
    _connection: http.client.HTTPSConnection | None = field(default=None, repr=False)

    def request(self, method: str, path: str, body: Any = None, **query: str) -> Response:
        if query:
            path = f"{path}?{urlencode(query)}"
        data = json.dumps(body).encode() if body is not None else None
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, path, body=data, headers=headers)
                reply = connection.getresponse()
                raw = reply.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # A keep-alive connection the server closed meanwhile: one fresh try.
                self.close()
                if attempt == 2:
                    raise
        warnings = [_warning_text(h) for h in reply.headers.get_all("Warning") or []]
        return Response(reply.status, json.loads(raw) if raw else {}, warnings)

    def _connect(self) -> http.client.HTTPSConnection:
        if self._connection is None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            self._connection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=context, timeout=30
            )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- objects ------------------------------------------------------------------------------------------

    @staticmethod
    def path(kind: str, api_version: str, namespace: str | None = None, name: str | None = None) -> str:
        prefix = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        scope = "" if kind in CLUSTER_SCOPED else f"/namespaces/{quote(namespace or 'default')}"
        return f"{prefix}{scope}/{PLURALS[kind]}" + (f"/{quote(name)}" if name else "")

    def create(
        self, obj: Mapping[str, Any], namespace: str | None = None, *, dry_run: bool = False
    ) -> Response:
        """POST the object, as `kubectl create` does (`--dry-run=server`: dryRun=All, nothing is stored)."""
        path = self.path(
            obj["kind"], obj["apiVersion"], namespace or obj.get("metadata", {}).get("namespace")
        )
        query = {"fieldManager": "podgate-e2e", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("POST", path, obj, **query)

    def get(self, kind: str, api_version: str, namespace: str | None, name: str) -> dict[str, Any]:
        response = self.request("GET", self.path(kind, api_version, namespace, name))
        ensure(response.status == 200, f"GET {kind} {namespace}/{name}: {response.status} {response.message}")
        return response.body

    def objects(self, kind: str, api_version: str, namespace: str, **query: str) -> list[dict[str, Any]]:
        response = self.request("GET", self.path(kind, api_version, namespace), **query)
        ensure(response.status == 200, f"GET {kind} in {namespace}: {response.status} {response.message}")
        items: list[dict[str, Any]] = response.body["items"]
        return items

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.objects("Pod", "v1", namespace, labelSelector=selector)

    def must_create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        response = self.create(obj, namespace)
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName")
        ensure(response.status == 201, f"create {obj['kind']} {name}: {response.status} {response.message}")
        return response.body


@dataclass
class ControlPlane:
    """One control plane of ../shared/k8s in `home`, on free ports; stopped by its own down.sh."""

    kit: Path
    home: Path
    ports: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "K8S_REAL": str(self.home), **{k: str(v) for k, v in self.ports.items()}}

    def up(self) -> None:
        self.ports = {
            name: free_port() for name in ("APISERVER_PORT", "ETCD_CLIENT_PORT", "ETCD_PEER_PORT", "KCM_PORT")
        }
        for script in ("install.sh", "up.sh"):
            result = subprocess.run(
                [str(self.kit / script)], env=self.env(), capture_output=True, text=True, timeout=180
            )
            if result.returncode != 0:
                raise Broken(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def down(self) -> None:
        # down.sh signals only the PIDs recorded in home/run/: never anyone else's control plane.
        subprocess.run(
            [str(self.kit / "down.sh")], env=self.env(), capture_output=True, timeout=120, check=False
        )

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    def api(self) -> Api:
        tokens = (self.home / "pki" / "tokens.csv").read_text().splitlines()
        token = next(line.split(",")[0] for line in tokens if line.split(",")[1] == "admin")
        return Api(self.ports["APISERVER_PORT"], token, self.home / "pki" / "ca.crt")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.home / "kubecache")}
        result = subprocess.run(
            ["kubectl", *args], input=input, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise Broken(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result


@dataclass(repr=False)
class Cluster:
    """The session's control plane, podgate server and webhook registrations."""

    plane: ControlPlane
    api: Api
    server: Server
    work: Path
    certs: Path
    # The webhook configurations as deploy/ renders them (calling the podgate Service).
    rendered: list[dict[str, Any]]
    _namespaces: set[str] = field(default_factory=set)
    _probes: Iterator[int] = field(default_factory=itertools.count)

    def __repr__(self) -> str:
        return f"<cluster: apiserver :{self.api.port}, podgate :{self.server.port}, in {self.work}>"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, input=input, check=check)

    def namespace(self, name: str, **labels: str) -> str:
        """Create the namespace once and wait for its default ServiceAccount, without which the
        ServiceAccount admission plugin refuses every pod."""
        if name not in self._namespaces:
            self.api.must_create(objects.namespace(name, **labels))
            account = f"/api/v1/namespaces/{name}/serviceaccounts/default"
            wait_for(
                lambda: self.api.request("GET", account).status == 200,
                f"the default ServiceAccount of {name}",
            )
            self._namespaces.add(name)
        return name

    def wait_registered(self) -> None:
        """Until a dry-run pod create reaches podgate's /mutate and /validate: the apiserver picks webhook
        configurations up asynchronously, and after a restart its first calls may still fail."""

        def called() -> bool:
            name = f"probe-{next(self._probes)}"
            self.api.create(
                objects.pod(name, objects.container(resources=objects.REQUESTS)),
                PROBE_NAMESPACE,
                dry_run=True,
            )
            seen = {r["endpoint"] for r in self.server.reviews() if r.get("name") == name}
            return seen == {"mutate", "validate"}

        wait_for(called, "the apiserver to call podgate's webhooks", timeout=30, interval=0.2)

    @contextmanager
    def podgate_stopped(self) -> Iterator[None]:
        """podgate stopped (SIGTERM; its process gone), then started again and called by the apiserver."""
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()
            self.wait_registered()
