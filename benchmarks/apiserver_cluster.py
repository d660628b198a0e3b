"""The control plane of ../shared/k8s for the apiserver benchmark: start it, talk to it, register webhooks.

Everything here speaks to the kube-apiserver the way a client in a cluster does: HTTPS verified against
the cluster CA from the kubeconfig, the kubeconfig's bearer token, keep-alive connections. Nothing imports
`webhook`: podgate is another process here, driven through its command line, so the benchmark keeps
working while the package moves around.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
import yaml

KIT = benchlib.REPO.parent / "shared" / "k8s"
DEPLOY = benchlib.REPO / "deploy"
NAMESPACE = "bench"
# Every object the benchmark registers carries this label, so it can remove exactly its own.
SIDE_LABEL = "bench.podgate.io/side"
WEBHOOK_METRIC = "apiserver_admission_webhook_admission_duration_seconds"
FAIL_OPEN_METRIC = "apiserver_admission_webhook_fail_open_count"
REJECTION_METRIC = "apiserver_admission_webhook_rejection_count"
TICKS = os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now; held open together so no two of them are the same."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads) from /proc; 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


@dataclass
class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager from the kit, in `root`, on ports of its own.

    The kit's defaults (6443, 2379, 2380, 10257) are left to others on the same machine: a test suite
    may be running its own control plane beside this one.
    """

    root: Path
    kcm_args: str = ""
    ports: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ, K8S_REAL=str(self.root))
        env.update({name: str(port) for name, port in self.ports.items()})
        if self.kcm_args:
            env["KCM_EXTRA_ARGS"] = self.kcm_args
        return env

    def _run(self, script: str, *args: str) -> None:
        log = self.root / "kit.log"
        with log.open("a") as out:
            done = subprocess.run([str(KIT / script), *args], env=self.env(), stdout=out, stderr=out)
        if done.returncode:
            tail = "\n".join(log.read_text().splitlines()[-30:])
            raise RuntimeError(f"{script} failed ({done.returncode}); {log}:\n{tail}")

    def up(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.ports:
            apiserver, client, peer, kcm = free_ports(4)
            self.ports = {
                "APISERVER_PORT": apiserver,
                "ETCD_CLIENT_PORT": client,
                "ETCD_PEER_PORT": peer,
                "KCM_PORT": kcm,
            }
        # install.sh writes the apiserver port into the kubeconfig; it keeps a kubeconfig that exists.
        (self.root / "kubeconfig").unlink(missing_ok=True)
        self._run("install.sh")
        self._run("up.sh")

    def down(self) -> None:
        if (self.root / "run").is_dir():
            self._run("down.sh", "--wipe")

    def pid(self, name: str) -> int:
        return int((self.root / "run" / f"{name}.pid").read_text())

    def api(self) -> Api:
        return Api.from_kubeconfig(self.root / "kubeconfig")


class Api:
    """One keep-alive HTTPS connection to the apiserver, reopened when the server drops it."""

    def __init__(self, host: str, port: int, token: str, ca_pem: str) -> None:
        self.host, self.port, self.token, self.ca_pem = host, port, token, ca_pem
        self.context = client_context(ca_pem)
        self._conn: http.client.HTTPSConnection | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Api:
        config = yaml.safe_load(path.read_text())
        cluster = config["clusters"][0]["cluster"]
        token = config["users"][0]["user"]["token"]
        host, _, port = cluster["server"].removeprefix("https://").partition(":")
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return cls(host, int(port), token, ca_pem)

    def headers(self, content_type: str = "application/json") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "Content-Type": content_type,
        }

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.context, timeout=60
                )
            try:
                self._conn.request(method, path, body=data, headers=self.headers(content_type))
                reply = self._conn.getresponse()
                return reply.status, reply.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        status, data = self.request(method, path, body)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status} {data[:500]!r}")
        return json.loads(data) if data else None

    def watch(self, path: str) -> Iterator[dict[str, Any]]:
        """Start a watch now (the apiserver sends its headers at once) on this object's own connection;
        the events are read as the returned iterator is advanced."""
        self.close()
        self._conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=120)
        self._conn.request("GET", path, headers=self.headers())
        reply = self._conn.getresponse()
        if reply.status != 200:
            raise RuntimeError(f"watch {path}: {reply.status} {reply.read()[:300]!r}")
        return (json.loads(line) for line in iter(reply.readline, b""))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- objects --------------------------------------------------------------------------------------

    def ensure_namespace(self, name: str) -> None:
        status, data = self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        if status not in (201, 409):
            raise RuntimeError(f"creating namespace {name}: {status} {data[:300]!r}")
        # ServiceAccount admission refuses pods until the controller-manager has made the default account.
        deadline = time.monotonic() + 30
        while self.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no default service account in {name} after 30 s")
            time.sleep(0.1)

    def delete_pods(self, selector: str, namespace: str = NAMESPACE, timeout: float = 120.0) -> None:
        """deletecollection, then wait until the list is empty: every batch starts with the same etcd."""
        path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
        self.json("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
        deadline = time.monotonic() + timeout
        while self.json("GET", f"{path}&limit=1")["items"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pods {selector} still there after {timeout} s")
            time.sleep(0.05)

    # -- metrics --------------------------------------------------------------------------------------

    def webhook_metrics(self) -> dict[tuple[str, str], dict[str, float]]:
        """Per (webhook name, type): the admission duration histogram's sum and count (CREATE and UPDATE
        together), its fail-open and rejection counts. Cumulative: callers take differences."""
        status, data = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics: {status}")
        found: dict[tuple[str, str], dict[str, float]] = {}
        for line in data.decode().splitlines():
            if not line.startswith("apiserver_admission_webhook_"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, labels_text = series.partition("{")
            labels = _labels(labels_text.rstrip("}"))
            key = _KEYS.get(metric)
            if key is None:
                continue
            entry = found.setdefault((labels.get("name", ""), labels.get("type", "")), {})
            entry[key] = entry.get(key, 0.0) + float(value)
        return found


_KEYS = {
    f"{WEBHOOK_METRIC}_sum": "sum",
    f"{WEBHOOK_METRIC}_count": "count",
    FAIL_OPEN_METRIC: "fail_open",
    REJECTION_METRIC: "rejected",
}


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for part in text.split('",'):
        name, _, value = part.partition('="')
        labels[name.strip(",")] = value.rstrip('"')
    return labels


def metric_delta(
    before: dict[tuple[str, str], dict[str, float]], after: dict[tuple[str, str], dict[str, float]]
) -> dict[tuple[str, str], dict[str, float]]:
    delta = {}
    for key, figures in after.items():
        old = before.get(key, {})
        changed = {name: value - old.get(name, 0.0) for name, value in figures.items()}
        if any(changed.values()):
            delta[key] = changed
    return delta


def client_context(ca_pem: str) -> ssl.SSLContext:
    """Chain and host name verified, as kubectl and the controllers do."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# -- webhook configurations ---------------------------------------------------------------------------


def webhook_configurations(side: str, url: str, ca_pem: bytes) -> list[tuple[str, dict[str, Any]]]:
    """deploy/'s two configurations as shipped (rules, selectors, match conditions, failure policies,
    timeouts), pointed at `url` instead of the in-cluster Service, named after `side`.

    Each side's webhooks get names of their own, so the apiserver's per-webhook metrics tell the sides
    apart, and a probe can show which side answered.
    """
    made = []
    for kind in ("mutating", "validating"):
        plural = f"{kind}webhookconfigurations"
        config = copy.deepcopy(yaml.safe_load((DEPLOY / f"{kind}webhookconfiguration.yaml").read_text()))
        config["metadata"] = {"name": f"bench-{side}", "labels": {SIDE_LABEL: side}}
        for webhook in config["webhooks"]:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": f"{url}{path}", "caBundle": base64.b64encode(ca_pem).decode()}
            webhook["name"] = webhook_name(side, webhook["name"])
        made.append((plural, config))
    return made


def webhook_name(side: str, shipped: str) -> str:
    """mutate.podgate.io -> mutate.<side>.bench.podgate.io"""
    verb, _, _ = shipped.partition(".")
    return f"{verb}.{side}.bench.podgate.io"


def register(api: Api, side: str | None, url: str = "", ca_pem: bytes = b"") -> None:
    """Remove every configuration the benchmark made, then register `side`'s (None: no webhook)."""
    base = "/apis/admissionregistration.k8s.io/v1"
    for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        api.json("DELETE", f"{base}/{plural}?labelSelector={SIDE_LABEL}")
    if side is not None:
        for plural, config in webhook_configurations(side, url, ca_pem):
            api.json("POST", f"{base}/{plural}", config)
