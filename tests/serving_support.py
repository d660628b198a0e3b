"""Test support for the server: a throwaway CA and server certificate, and a real `podgate serve` process."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_pki(directory: Path, common_name: str = "podgate test server") -> Pki:
    """A CA and a server certificate for localhost and 127.0.0.1, signed by it (EC P-256, one day)."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"podgate test CA {os.getpid()}-{time.monotonic_ns()}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


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


def client_context(ca: Path) -> ssl.SSLContext:
    """Verifies the chain and the host name, like the apiserver does with the webhook's caBundle."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    ca: Path
    log: Path

    def connect(self, ca: Path | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=client_context(ca or self.ca), timeout=20
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


# What the kube-apiserver sends with every call (tests/fixtures/admission-reviews/requests.jsonl).
APISERVER_HEADERS = {
    "User-Agent": "kube-apiserver-admission",
    "Accept": "application/json, */*",
    "Content-Type": "application/json",
    "Accept-Encoding": "gzip",
}


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"podgate serve exited with {server.process.returncode}:\n{server.log.read_text()}"
            )
        try:
            status, _, _ = server.request("GET", "/readyz")
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"podgate serve was not ready in {STARTUP_DEADLINE}s:\n{server.log.read_text()}")


@contextmanager
def serve(
    policies: Path, pki: Pki, workdir: Path, *, workers: int = 2, extra_env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """`podgate serve` as a subprocess on a free loopback port; stopped (SIGTERM) on exit."""
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
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = Server(process, port, pki.ca, log)
    try:
        wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fixture_files(phase: str | None = None) -> list[Path]:
    files = sorted(FIXTURES.glob("*.json"))
    return [f for f in files if phase is None or f"_{phase}_" in f.name]
