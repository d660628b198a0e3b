"""The webhooks the apiserver benchmark registers: `podgate serve` as deploy/ ships it, and the Go floor.

podgate is driven only through its command line (`podgate certs`, `podgate serve`), never imported, so the
benchmark measures the installed command whatever the package's layout is. Its settings are deploy/'s:
the environment of the Deployment's container (PODGATE_WORKERS, ...) and its arguments, with the mounted
paths replaced by local ones and the multiprocess metrics directory on tmpfs, as deploy/'s emptyDir
(medium: Memory) is.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apiserver_cluster as cluster
import benchlib
import yaml
from apiserver_cluster import children, client_context, cpu_seconds

PODGATE = benchlib.REPO / ".venv" / "bin" / "podgate"
READY_DEADLINE = 30.0


def make_certificates(podgate: Path, directory: Path) -> dict[str, Path]:
    """A CA and a serving certificate for 127.0.0.1 from `podgate certs`, from the repository's own CSR
    inputs (ECDSA P-256, as `make certs` makes them), so the handshakes cost what they cost in a cluster."""
    directory.mkdir(parents=True, exist_ok=True)
    inputs = benchlib.REPO / "certs"
    for name in ("ca-csr.json", "server-csr.json", "ca-config.json"):
        shutil.copy(inputs / name, directory / name)
    quiet = {"stdout": subprocess.DEVNULL, "check": True}
    subprocess.run(
        [str(podgate), "certs", "init-ca", "--out-dir", str(directory), str(directory / "ca-csr.json")],
        **quiet,
    )
    subprocess.run(
        [
            str(podgate), "certs", "gencert",
            "--ca", str(directory / "ca.pem"), "--ca-key", str(directory / "ca-key.pem"),
            "--config", str(directory / "ca-config.json"), "--profile", "server",
            "--hostname", "127.0.0.1,localhost", "--out-dir", str(directory),
            str(directory / "server-csr.json"),
        ],
        **quiet,
    )  # fmt: skip
    return {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server-key.pem"}


def shipped_environment() -> dict[str, str]:
    """The podgate container's environment in deploy/deployment.yaml (the worker count, ...)."""
    deployment = yaml.safe_load((benchlib.REPO / "deploy" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: str(item["value"]) for item in container.get("env", []) if "value" in item}


@dataclass
class Webhook:
    """One registered side's server: its process, where it listens, what it costs."""

    side: str  # floor, floor-nopatch, podgate, podgate-w1t8, ...
    kind: str  # floor or podgate
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    settings: dict[str, Any] = field(default_factory=dict)
    scratch: Path | None = None  # removed once the server has stopped (podgate's metric files)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The process and its children (a gunicorn master and its workers)."""
        return [self.process.pid, *children(self.process.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def log_size(self) -> int:
        return self.log.stat().st_size

    def reviews_since(self, offset: int) -> dict[str, dict[str, float]]:
        """podgate's own account of the reviews it logged after `offset`: per endpoint, how many, and the
        mean of `durationMs` (from the request reaching the Flask app to its answer being ready). What
        the apiserver waits beyond that is TLS, gunicorn, the thread hand-off and the network."""
        if self.kind != "podgate":
            return {}
        with self.log.open("rb") as log:
            log.seek(offset)
            text = log.read()
        durations: dict[str, list[float]] = {}
        for line in text.splitlines():
            if b'"message":"admission"' in line:
                entry = json.loads(line)
                durations.setdefault(entry["endpoint"], []).append(entry["durationMs"])
        return {
            endpoint: {"reviews": len(values), "mean_ms": round(sum(values) / len(values), 3)}
            for endpoint, values in durations.items()
        }

    def count_in_log(self, message: str) -> int:
        """How many of the server's log lines have `message` (a JSON log line's "message" value)."""
        needle = f'"message":"{message}"'.encode()
        return sum(1 for line in self.log.read_bytes().splitlines() if needle in line)

    def stop(self) -> None:
        benchlib.stop(self.process)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _wait_ready(webhook: Webhook, ca_pem: str) -> None:
    context = client_context(ca_pem)
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if webhook.process.poll() is not None:
            raise RuntimeError(
                f"{webhook.side} exited {webhook.process.returncode}:\n{webhook.log.read_text()}"
            )
        conn = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=context, timeout=2)
        try:
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    webhook.stop()
    raise RuntimeError(f"{webhook.side} not ready in {READY_DEADLINE} s:\n{webhook.log.read_text()}")


def start_podgate(
    side: str, podgate: Path, certs: dict[str, Path], port: int, workdir: Path, overrides: dict[str, str]
) -> Webhook:
    """`podgate serve` with deploy/'s settings; `overrides` (PODGATE_WORKERS, PODGATE_THREADS) on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODGATE_", "PROMETHEUS_"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)  # podgate would bind 0.0.0.0 if it thought it was in a pod
    env.update(shipped_environment())
    env.update(overrides)
    # deploy/ puts the multiprocess metric files on a memory-backed emptyDir; /dev/shm is the same here.
    metrics = Path("/dev/shm") / f"podgate-bench-{workdir.name}-{side}"
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    settings = {k: v for k, v in env.items() if k.startswith("PODGATE_")}
    log = workdir / f"{side}.log"
    command = [
        str(podgate), "serve", "--policies", str(benchlib.POLICIES),
        "--cert", str(certs["cert"]), "--key", str(certs["key"]), "--bind", f"127.0.0.1:{port}",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    webhook = Webhook(side, "podgate", process, port, log, settings, scratch=metrics)
    _wait_ready(webhook, certs["ca"].read_text())
    webhook.settings.update(_ready_fields(log))
    return webhook


def _ready_fields(log: Path) -> dict[str, Any]:
    """What podgate says when it is ready: the workers and threads it actually runs."""
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"message":"ready"' in line:
            fields: dict[str, Any] = json.loads(line)
            return {k: fields[k] for k in ("workers", "threads") if k in fields}
    return {}


def start_floor(side: str, certs: dict[str, Path], port: int, workdir: Path, patch: Path | None) -> Webhook:
    command = [
        str(cluster.KIT / "floor-webhook" / "floor-webhook"),
        "--cert",
        str(certs["cert"]),
        "--key",
        str(certs["key"]),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if patch is not None:
        command += ["--patch", str(patch)]
    log = workdir / f"{side}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    webhook = Webhook(side, "floor", process, port, log, {"patch": patch is not None})
    _wait_ready(webhook, certs["ca"].read_text())
    return webhook


def mutate_review(pod: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The AdmissionReview the apiserver sends to /mutate for `pod` (as it stands after the apiserver's
    defaulting and built-in admission), in the shape of the captured fixtures (tests/fixtures)."""
    group_version = {"group": "", "version": "v1"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {**group_version, "kind": "Pod"},
            "resource": {**group_version, "resource": "pods"},
            "requestKind": {**group_version, "kind": "Pod"},
            "requestResource": {**group_version, "resource": "pods"},
            "name": pod["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "admin",
                "uid": "admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def podgate_patch(webhook: Webhook, ca_pem: str, review: dict[str, Any]) -> list[dict[str, Any]]:
    """podgate's own JSON Patch for a review, asked of the running server at /mutate."""
    conn = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=client_context(ca_pem), timeout=10)
    try:
        conn.request(
            "POST",
            "/mutate?timeout=10s",
            body=json.dumps(review),
            headers={"Content-Type": "application/json"},
        )
        reply = conn.getresponse()
        answer = json.loads(reply.read())
    finally:
        conn.close()
    response = answer.get("response") or {}
    if reply.status != 200 or not response.get("patch"):
        raise RuntimeError(f"podgate gave no patch for the benchmark pod: {reply.status} {answer}")
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch
