"""The apiserver benchmark's rig: a control plane, the webhooks, and the measured operations on them.

    with Rig(Options(["none", "floor", "podgate"])) as rig:
        pool = ClientPool(rig.target(), clients=20, processes=4)
        rig.switch("podgate")      # register one side only; return once the apiserver calls just that side
        figures, samples = rig.batch(pool, "podgate", 100, "r0")  # 100 creates: latency, CPU, webhook metrics
        figures = rig.scale_deployment("podgate", 100, pool)      # a Deployment from 0 to 100 replicas

A side is "none" (no webhook registered), "floor" (../shared/k8s/floor-webhook replaying podgate's own
patch for the benchmark pod), "floor-nopatch" (the same, answering with no patch) or "podgate" (the real
`podgate serve`, deploy/'s settings), and "podgate-wNtM" for podgate with N workers and M threads.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apiserver_cluster as cluster
import apiserver_servers as servers
import benchlib
from apiserver_load import PLACEHOLDER, Batch, ClientPool, Sample, Target

SET_LABEL = "bench.podgate.io/set"
# Test-labelled, so every default policy acts (resources, probes on the `http` port, tolerations, the
# downward-API variables); named, so the labels policy has nothing to add and the patch is the same for
# every pod, which is what lets the floor replay it.
LOAD_LABELS = {"app.kubernetes.io/name": "bench", "app.kubernetes.io/env": "test", SET_LABEL: "load"}
DEPLOY_LABELS = {
    "app.kubernetes.io/name": "bench-deploy",
    "app.kubernetes.io/env": "test",
    SET_LABEL: "deploy",
}
CONTAINER = {
    "name": "app",
    "image": "nginx:1.27",
    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
}
# In podgate's patch for the benchmark pod (the downward-API variables), and so in the floor's replay.
MARKER = b"MY_POD_NAME"
DEPLOYMENT = "bench"
SIDES = ("none", "floor", "floor-nopatch", "podgate")
VARIANT = re.compile(r"podgate-w(\d+)t(\d+)$")


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"containers": [copy.deepcopy(CONTAINER)]},
    }


def normalized(obj: dict[str, Any]) -> str:
    """What a pod's webhooks decided, without what differs between any two pods: names, uids, times, the
    service-account volume's random suffix, a ReplicaSet's hash label."""
    labels = {
        k: v
        for k, v in obj["metadata"].get("labels", {}).items()
        if k not in ("pod-template-hash", SET_LABEL)
    }
    decided = {"labels": labels, "annotations": obj["metadata"].get("annotations", {}), "spec": obj["spec"]}
    return re.sub(r"kube-api-access-[a-z0-9]+", "kube-api-access-*", json.dumps(decided, sort_keys=True))


@dataclass
class Options:
    sides: list[str]
    podgate: Path = servers.PODGATE
    kcm_qps: int = 1000
    keep: bool = False
    workdir: Path | None = None


@dataclass
class Rig:
    options: Options
    workdir: Path = field(init=False)
    plane: cluster.ControlPlane = field(init=False)
    api: cluster.Api = field(init=False)
    webhooks: dict[str, servers.Webhook] = field(default_factory=dict)
    ca_pem: bytes = b""
    patch: list[dict[str, Any]] = field(default_factory=list)
    current: str | None = None
    decided: dict[str, str] = field(default_factory=dict)  # side -> normalized probe pod
    switches: list[dict[str, Any]] = field(default_factory=list)
    # Per podgate side, counted once it has stopped: connections it dropped after a TLS handshake with no
    # request within its read timeout (a client's spare connection holding a request thread until then).
    cut_off: dict[str, int] = field(default_factory=dict)

    def __enter__(self) -> Rig:
        made = self.options.workdir or Path(tempfile.mkdtemp(prefix="podgate-apiserver-bench-"))
        self.workdir = made
        kcm_args = ""
        if self.options.kcm_qps:
            # The controller-manager's client allows 20 requests/s (burst 30) by default: 100 pod creates
            # plus their events would wait on that limiter, not on the webhook.
            qps = self.options.kcm_qps
            kcm_args = f"--kube-api-qps={qps} --kube-api-burst={qps}"
        self.plane = cluster.ControlPlane(self.workdir / "k8s", kcm_args)
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        print(f"control plane in {self.plane.root}", flush=True)
        self.plane.up()
        self.api = self.plane.api()
        self.api.ensure_namespace(cluster.NAMESPACE)
        certs = servers.make_certificates(self.options.podgate, self.workdir / "pki")
        self.ca_pem = certs["ca"].read_bytes()
        wanted = [side for side in self.options.sides if side != "none"]
        podgates = [side for side in wanted if side == "podgate" or VARIANT.match(side)]
        ports = iter(cluster.free_ports(len(wanted) + 1))
        for side in podgates:
            variant = VARIANT.match(side)
            overrides = {"PODGATE_WORKERS": variant[1], "PODGATE_THREADS": variant[2]} if variant else {}
            self.webhooks[side] = servers.start_podgate(
                side, self.options.podgate, certs, next(ports), self.workdir, overrides
            )
        self.patch = self._capture_patch(certs, next(ports))
        if MARKER.decode() not in json.dumps(self.patch):
            raise RuntimeError(f"podgate's patch for the benchmark pod lacks {MARKER!r}: {self.patch}")
        patch_file = self.workdir / "patch.json"
        patch_file.write_text(json.dumps(self.patch, separators=(",", ":")))  # as compact as podgate's
        for side in wanted:
            if side.startswith("floor"):
                patch = patch_file if side == "floor" else None
                self.webhooks[side] = servers.start_floor(side, certs, next(ports), self.workdir, patch)
        self.api.json("POST", f"/apis/apps/v1/namespaces/{cluster.NAMESPACE}/deployments", self._deployment())

    def _capture_patch(self, certs: dict[str, Path], spare_port: int) -> list[dict[str, Any]]:
        """podgate's patch for the benchmark pod: the pod as the apiserver hands it to webhooks (a dry-run
        create with no webhook registered: defaulted, service-account volume added), posted to /mutate."""
        cluster.register(self.api, None)
        created = self._probe()
        for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            created["metadata"].pop(key, None)  # set after the webhooks, when the pod is stored
        created["status"] = {}
        review = servers.mutate_review(created, cluster.NAMESPACE)
        # Only podgate sides run yet; any of them gives the same patch (settings differ, policies do not).
        podgate = self.webhooks.get("podgate") or next(iter(self.webhooks.values()), None)
        if podgate is None:  # measuring no podgate side: start one just to ask it
            podgate = servers.start_podgate(
                "podgate-patch", self.options.podgate, certs, spare_port, self.workdir, {}
            )
            try:
                return servers.podgate_patch(podgate, self.ca_pem.decode(), review)
            finally:
                podgate.stop()
        return servers.podgate_patch(podgate, self.ca_pem.decode(), review)

    def __exit__(self, *exc: object) -> None:
        for side, webhook in self.webhooks.items():
            webhook.stop()
            if webhook.kind == "podgate":
                self.cut_off[side] = webhook.count_in_log("slow client cut off")
        if hasattr(self, "api"):
            self.api.close()
        try:
            self.plane.down()
        finally:
            if not self.options.keep and self.options.workdir is None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    # -- sides ------------------------------------------------------------------------------------------

    def expected_calls(self, side: str) -> set[tuple[str, str]]:
        if side == "none":
            return set()
        return {
            (cluster.webhook_name(side, "mutate.podgate.io"), "admit"),
            (cluster.webhook_name(side, "validate.podgate.io"), "validating"),
        }

    def patched(self, side: str) -> bool:
        return side not in ("none", "floor-nopatch")

    def switch(self, side: str) -> None:
        """Register `side` only, then probe until a dry-run create shows the apiserver calling exactly its
        two webhooks (the apiserver's per-webhook metrics) and the pod patched or not as it should be."""
        if side == self.current:
            return
        started = time.perf_counter()
        webhook = self.webhooks.get(side)
        cluster.register(
            self.api, None if side == "none" else side, webhook.url if webhook else "", self.ca_pem
        )
        expected = self.expected_calls(side)
        for attempt in range(1, 201):
            before = self.api.webhook_metrics()
            probe = self._probe()
            calls = {
                key
                for key, figures in cluster.metric_delta(before, self.api.webhook_metrics()).items()
                if figures.get("count")
            }
            patched = MARKER.decode() in json.dumps(probe)
            if calls == expected and patched == self.patched(side):
                self.current = side
                self.decided.setdefault(side, normalized(probe))
                self.switches.append(
                    {"side": side, "probes": attempt, "seconds": time.perf_counter() - started}
                )
                return
            time.sleep(0.05)
        raise RuntimeError(f"the apiserver did not switch to {side}: calls {calls}, patched {patched}")

    def _probe(self) -> dict[str, Any]:
        path = f"/api/v1/namespaces/{cluster.NAMESPACE}/pods?dryRun=All"
        created: dict[str, Any] = self.api.json(
            "POST", path, pod(f"probe-{uuid.uuid4().hex[:8]}", LOAD_LABELS)
        )
        return created

    def replay_check(self) -> dict[str, Any]:
        """Did the floor's replay make the same pod podgate made? (Compared on a dry-run create each.)"""
        if "floor" not in self.decided or "podgate" not in self.decided:
            return {"checked": False}
        return {"checked": True, "same_pod": self.decided["floor"] == self.decided["podgate"]}

    # -- measurements -----------------------------------------------------------------------------------

    def target(self) -> Target:
        return Target(
            self.api.host,
            self.api.port,
            self.api.token,
            self.api.ca_pem,
            f"/api/v1/namespaces/{cluster.NAMESPACE}/pods",
        )

    def processes(self, pool: ClientPool | None = None) -> dict[str, list[int]]:
        """The processes whose CPU is accounted per pod; the webhook is the side being measured."""
        found = {
            name: [self.plane.pid(name)] for name in ("kube-apiserver", "etcd", "kube-controller-manager")
        }
        found["clients"] = pool.pids if pool else []
        found["benchmark"] = [os.getpid()]
        found["webhook"], found["idle webhooks"] = [], []
        for side, webhook in self.webhooks.items():
            found["webhook" if side == self.current else "idle webhooks"] += webhook.pids()
        return found

    def _cpu(self, pool: ClientPool | None) -> dict[str, float]:
        return {
            name: sum(cluster.cpu_seconds(pid) for pid in pids) for name, pids in self.processes(pool).items()
        }

    def batch(
        self, pool: ClientPool, side: str, pods: int, prefix: str
    ) -> tuple[dict[str, Any], list[Sample]]:
        """`pods` creates by the pool's clients with `side` registered; starts and ends with no load pods."""
        self.switch(side)
        selector = f"{SET_LABEL}=load"
        # Untimed: the apiserver opens (or re-opens) its connections to this side's webhook, and each
        # client's connection to the apiserver is warm.
        warm = Batch(max(10, 2 * pool.clients), f"warm-{prefix}", self.template(), MARKER, self.patched(side))
        pool.run(warm)
        self.api.delete_pods(selector)
        webhook = self.webhooks.get(side)
        log_offset = webhook.log_size() if webhook else 0
        metrics_before, cpu_before, busy_before = (
            self.api.webhook_metrics(),
            self._cpu(pool),
            benchlib.busy_cpu_seconds(),
        )
        samples = pool.run(Batch(pods, prefix, self.template(), MARKER, self.patched(side)))
        cpu_after, busy_after = self._cpu(pool), benchlib.busy_cpu_seconds()
        metrics = cluster.metric_delta(metrics_before, self.api.webhook_metrics())
        in_app = webhook.reviews_since(log_offset) if webhook else {}
        self.api.delete_pods(selector)
        wall = max(start + took for start, took, _, _ in samples) - min(start for start, _, _, _ in samples)
        cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
        figures = {
            "side": side,
            "clients": pool.clients,
            "pods": pods,
            "wall_s": round(wall, 4),
            "errors": errors(samples),
            "cpu_s": {name: round(value, 3) for name, value in cpu.items()},
            "foreign_cpus": round(max(0.0, (busy_after - busy_before) - sum(cpu.values())) / wall, 2),
            "webhooks": webhook_figures(metrics, side),
            "in_app": in_app,
            "latency_ms": latency_summary([took for _, took, _, _ in samples]),
            "loadavg": _loadavg(),
        }
        return figures, samples

    def template(self) -> bytes:
        return json.dumps(pod(PLACEHOLDER.decode(), LOAD_LABELS), separators=(",", ":")).encode()

    def _deployment(self) -> dict[str, Any]:
        template = pod("", DEPLOY_LABELS)
        del template["metadata"]["name"], template["apiVersion"], template["kind"]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT, "labels": dict(DEPLOY_LABELS)},
            "spec": {"replicas": 0, "selector": {"matchLabels": {SET_LABEL: "deploy"}}, "template": template},
        }

    def scale_deployment(self, side: str, replicas: int, pool: ClientPool) -> dict[str, Any]:
        """Scale the Deployment from 0 to `replicas`, timed from the scale request until the last pod is
        stored (a watch's ADDED events: no polling load on the apiserver), then back to 0."""
        self.switch(side)
        pool.run(
            Batch(
                max(10, 2 * pool.clients), f"warm-deploy-{side}", self.template(), MARKER, self.patched(side)
            )
        )
        self.api.delete_pods(f"{SET_LABEL}=load")
        selector = f"{SET_LABEL}=deploy"
        pods_path = f"/api/v1/namespaces/{cluster.NAMESPACE}/pods"
        listed = self.api.json("GET", f"{pods_path}?labelSelector={selector}")
        if listed["items"]:
            raise RuntimeError("Deployment pods left over from the last round")
        watch = cluster.Api(self.api.host, self.api.port, self.api.token, self.api.ca_pem)
        stream = watch.watch(
            f"{pods_path}?watch=1&labelSelector={selector}"
            f"&resourceVersion={listed['metadata']['resourceVersion']}"
        )
        scale = f"/apis/apps/v1/namespaces/{cluster.NAMESPACE}/deployments/{DEPLOYMENT}/scale"
        metrics_before, cpu_before, busy_before = (
            self.api.webhook_metrics(),
            self._cpu(None),
            benchlib.busy_cpu_seconds(),
        )
        started = time.perf_counter()
        self._scale(scale, replicas)
        times, last = [], None
        for event in stream:
            if event["type"] == "ADDED":
                times.append(time.perf_counter() - started)
                last = event["object"]
                if len(times) == replicas:
                    break
        cpu_after, busy_after = self._cpu(None), benchlib.busy_cpu_seconds()
        metrics = cluster.metric_delta(metrics_before, self.api.webhook_metrics())
        watch.close()
        self._scale(scale, 0)
        self.api.delete_pods(selector)
        self.api.json("DELETE", f"/api/v1/namespaces/{cluster.NAMESPACE}/events")  # keep etcd the same size
        cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
        wall = times[-1]
        patched = last is not None and MARKER.decode() in json.dumps(last)
        if last is not None:
            self.decided.setdefault(f"deploy-{side}", normalized(last))
        return {
            "side": side,
            "replicas": replicas,
            "seconds": round(wall, 3),
            "pods_seen": len(times),  # fewer than replicas only if the watch ended first
            "first_pod_s": round(times[0], 3),
            "half_s": round(times[len(times) // 2 - 1], 3),
            "patched_as_expected": patched == self.patched(side),
            "cpu_s": {name: round(value, 3) for name, value in cpu.items()},
            "foreign_cpus": round(max(0.0, (busy_after - busy_before) - sum(cpu.values())) / wall, 2),
            "webhooks": webhook_figures(metrics, side),
            "loadavg": _loadavg(),
        }

    def _scale(self, path: str, replicas: int) -> None:
        status, data = self.api.request(
            "PATCH",
            path,
            json.dumps({"spec": {"replicas": replicas}}).encode(),
            "application/merge-patch+json",
        )
        if status != 200:
            raise RuntimeError(f"scaling to {replicas}: {status} {data[:300]!r}")


def errors(samples: list[Sample]) -> dict[str, int]:
    return {
        "connection": sum(1 for _, _, status, _ in samples if status == 0),
        "http": sum(1 for _, _, status, _ in samples if status not in (0, 201)),
        # Created, but not as the side should have made it: a mutating webhook that failed open (podgate's
        # mutating webhook is failurePolicy Ignore, so a timeout is not an error to the client).
        "wrong_patch": sum(1 for _, _, status, ok in samples if status == 201 and not ok),
    }


def webhook_figures(delta: dict[tuple[str, str], dict[str, float]], side: str) -> dict[str, dict[str, float]]:
    """The apiserver's own view of each webhook call (apiserver_admission_webhook_admission_duration_seconds):
    from just before calling the webhook to having its answer, so it isolates the hop from the rest."""
    found = {}
    for (name, kind), figures in delta.items():
        if f".{side}.bench." not in name:
            continue
        phase = "mutating" if kind == "admit" else "validating"
        count = figures.get("count", 0.0)
        found[phase] = {
            "calls": int(count),
            "mean_ms": round(figures.get("sum", 0.0) / count * 1000, 3) if count else float("nan"),
            "fail_open": int(figures.get("fail_open", 0.0)),
            "rejected": int(figures.get("rejected", 0.0)),
        }
    return found


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    if not ordered:
        return {}
    return {
        "avg": round(statistics.fmean(ordered) * 1000, 3),
        "p50": round(benchlib.percentile(ordered, 0.50) * 1000, 3),
        "p95": round(benchlib.percentile(ordered, 0.95) * 1000, 3),
        "p99": round(benchlib.percentile(ordered, 0.99) * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def _loadavg() -> list[float]:
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]
