"""Test support for the server: a real `podgate serve` process, and what tests ask of it."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# write_pki is re-exported: the server tests and the benchmarks take both from here.
from tests.tls_support import Pki
from tests.tls_support import write_pki as write_pki

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "admission-reviews"
PODGATE = Path(sys.executable).parent / "podgate"
# A policy set these tests own, so that counts and log fields do not move when policies/ grows:
# test workloads get resources; every other pod must request cpu and memory.
PINNED_POLICIES = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: test-defaults
spec:
  match:
    any:
      - namespaces: ["test", "test-*", "*-test"]
      - selector:
          matchLabels:
            app.kubernetes.io/env: test
  rules:
    - name: guaranteed-resources
      resources:
        defaults:
          cpu: {request: 100m, limit: 100m}
          memory: {request: 256Mi, limit: 256Mi}
        whenRequestExceedsLimit: raiseLimit
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: requests-required
spec:
  rules:
    - name: cpu-and-memory
      action: enforce
      requireRequests:
        resources: [cpu, memory]
"""
# Generous: the server is ready in well under a second; CI machines can be slow.
STARTUP_DEADLINE = 30.0


def pinned_policies(directory: Path) -> Path:
    """A policy directory holding PINNED_POLICIES as resources.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resources.yaml").write_text(PINNED_POLICIES)
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def client_context(ca: Path, identity: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """Verifies the chain and the host name, like the apiserver does with the webhook's caBundle;
    presents `identity` (certificate, key) as its client certificate if given."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if identity is not None:
        context.load_cert_chain(certfile=identity[0], keyfile=identity[1])
    return context


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    ca: Path
    log: Path

    def connect(
        self, ca: Path | None = None, identity: tuple[Path, Path] | None = None
    ) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=client_context(ca or self.ca, identity), timeout=20
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        conn: http.client.HTTPSConnection | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        own = conn is None
        conn = conn or self.connect()
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            reply = conn.getresponse()
            return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
        finally:
            if own:
                conn.close()

    def post_review(
        self, path: str, body: bytes, conn: http.client.HTTPSConnection | None = None
    ) -> tuple[int, dict[str, Any]]:
        status, _, data = self.request("POST", path, body, APISERVER_HEADERS, conn)
        return status, json.loads(data)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def workers(self) -> set[int]:
        """The pids of gunicorn's workers: the children of the `podgate serve` process, its master."""
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # Field 4 is the parent pid; the command name before it may hold spaces, never ")".
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.add(int(stat.parent.name))
        return children


# What the kube-apiserver sends with every call (tests/fixtures/admission-reviews/requests.jsonl).
APISERVER_HEADERS = {
    "User-Agent": "kube-apiserver-admission",
    "Accept": "application/json, */*",
    "Content-Type": "application/json",
    "Accept-Encoding": "gzip",
}


def wait_ready(server: Server, workers: int = 1) -> None:
    """Until /readyz answers 200 and all `workers` have been forked (the first answers before the last
    exists, and tests that kill or count workers need them all)."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"podgate serve exited with {server.process.returncode}:\n{server.log.read_text()}"
            )
        try:
            status, _, _ = server.request("GET", "/readyz")
            if status == 200 and len(server.workers()) >= workers:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"podgate serve was not ready in {STARTUP_DEADLINE}s:\n{server.log.read_text()}")


@contextmanager
def serve(
    policies: Path,
    pki: Pki,
    workdir: Path,
    *,
    workers: int = 2,
    extra_env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[Server]:
    """`podgate serve --workers N ARGS...` as a subprocess on a free loopback port; SIGTERM on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODGATE_")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(
        {
            "PODGATE_RELOAD_INTERVAL": "0.2",
            "PODGATE_METRICS_DIR": str(workdir / "metrics"),
            "PODGATE_GRACEFUL_TIMEOUT": "10",
        }
    )
    env.update(extra_env or {})
    log = workdir / f"serve-{port}.log"
    command = [
        str(PODGATE),
        "serve",
        "--policies",
        str(policies),
        "--cert",
        str(pki.cert),
        "--key",
        str(pki.key),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = Server(process, port, pki.ca, log)
    try:
        wait_ready(server, workers)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def scrape(server: Server) -> dict[str, float]:
    """The /metrics samples, by their full name with labels."""
    status, _, body = server.request("GET", "/metrics")
    assert status == 200
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def served_digests(server: Server) -> dict[str, str]:
    """pid -> the digest of the policy set that worker serves, from podgate_policy_set_info."""
    digests = {}
    for name, value in scrape(server).items():
        found = re.fullmatch(r'podgate_policy_set_info\{digest="(\w+)",pid="(\d+)"\}', name)
        if found and value == 1:
            digests[found.group(2)] = found.group(1)
    return digests


def labelled_pod_review() -> bytes:
    """Fixture 0001 (a bare pod) labelled as a test workload, so PINNED_POLICIES' defaults patch it."""
    review: dict[str, Any] = json.loads(fixture_files("mutate")[0].read_text())
    review["request"]["object"]["metadata"]["labels"] = {"app.kubernetes.io/env": "test"}
    return json.dumps(review).encode()


def patched_cpu(status: int, body: bytes) -> str | None:
    """The cpu values a /mutate answer patches in, joined ("100m"): which policy set answered."""
    if status != 200:
        return None
    patch = base64.b64decode(json.loads(body)["response"].get("patch", ""))
    return ",".join(sorted(set(re.findall(r'"cpu": ?"(\d+m)"', patch.decode())))) or None


def fixture_files(phase: str | None = None) -> list[Path]:
    files = sorted(FIXTURES.glob("*.json"))
    return [f for f in files if phase is None or f"_{phase}_" in f.name]


def client_hello(server: Server) -> bytes:
    """The bytes of a real TLS ClientHello, to be sent slowly over plain TCP."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(server.ca).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()  # writes the ClientHello, then wants the server's answer
    return outgoing.read()
