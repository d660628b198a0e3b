"""podgate as a user runs it, through its command only: `podgate certs`, `podgate serve`, `podgate
render-deploy`, and the webhook registrations of deploy/ pointed at a server on loopback.

Nothing here imports the webhook package: the suite judges the installed command and the shipped files.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.support import ensure, wait_for

REPO = Path(__file__).resolve().parents[2]
# What is tested: the podgate command, the policies it serves and deploy/ (conftest.py: PODGATE_E2E_*).
PODGATE = os.environ.get("PODGATE_E2E_PODGATE", str(REPO / ".venv" / "bin" / "podgate"))
POLICIES = Path(os.environ.get("PODGATE_E2E_POLICIES", REPO / "policies"))
DEPLOY = Path(os.environ.get("PODGATE_E2E_DEPLOY", REPO / "deploy"))
# The names `make certs` issues the server certificate for: render-deploy insists on the Service's, and the
# loopback server is dialled as 127.0.0.1. One certificate thus serves deploy/ and this suite.
CERT_HOSTS = (
    "podgate,podgate.podgate,podgate.podgate.svc,podgate.podgate.svc.cluster.local,localhost,127.0.0.1"
)


def podgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PODGATE, *args], env=clean_env(), capture_output=True, text=True, timeout=60)


def clean_env() -> dict[str, str]:
    """The environment without PODGATE_* settings, which would change what `podgate` does."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PODGATE_")}


def make_certs(target: Path) -> Path:
    """A CA and a server certificate made as `make certs` makes them, from the committed CSR inputs."""
    target.mkdir(parents=True)
    for name in ("ca-csr.json", "server-csr.json", "ca-config.json"):
        shutil.copyfile(REPO / "certs" / name, target / name)
    steps = [
        ("certs", "init-ca", "--out-dir", str(target), str(target / "ca-csr.json")),
        (
            "certs", "renew", "--ca", str(target / "ca.pem"), "--ca-key", str(target / "ca-key.pem"),
            "--config", str(target / "ca-config.json"), "--profile", "server",
            "--csr", str(target / "server-csr.json"), "--hostname", CERT_HOSTS,
            "--cert", str(target / "server.pem"),
        ),
    ]  # fmt: skip
    for step in steps:
        result = podgate(*step)
        ensure(result.returncode == 0, f"podgate {' '.join(step)}: {result.stderr}")
    return target


def webhook_configurations(deploy: Path, certs: Path, policies: Path, work: Path) -> list[dict[str, Any]]:
    """The two webhook configurations of deploy/, rendered as `make deploy` renders them: deploy/ copied to
    `work` (the repository's deploy/generated/ is never written), render-deploy, `kubectl kustomize`."""
    copied = work / "deploy"
    shutil.copytree(deploy, copied, ignore=shutil.ignore_patterns("generated"))
    inputs = ("--certs-dir", str(certs), "--policies", str(policies), "--out", str(copied / "generated"))
    result = podgate("render-deploy", *inputs)
    ensure(result.returncode == 0, f"podgate render-deploy: {result.stderr}")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(copied)], capture_output=True, text=True, timeout=60, check=False
    )
    ensure(rendered.returncode == 0, f"kubectl kustomize: {rendered.stderr}")
    kinds = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    found = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc and doc["kind"] in kinds]
    ensure(sorted(d["kind"] for d in found) == list(kinds), f"deploy/ renders {[d['kind'] for d in found]}")
    return found


def pointed_at(configuration: dict[str, Any], port: int) -> dict[str, Any]:
    """The configuration calling https://127.0.0.1:PORT/<path> instead of the podgate Service, which does not
    exist here. The caBundle stays the one deploy/ rendered (kustomize wraps it; the apiserver does not)."""
    configuration = copy.deepcopy(configuration)
    for webhook in configuration["webhooks"]:
        config = webhook["clientConfig"]
        service = config.pop("service")
        config["url"] = f"https://127.0.0.1:{port}{service['path']}"
        config["caBundle"] = "".join(config["caBundle"].split())
    return configuration


@dataclass
class Server:
    """One `podgate serve` process on 127.0.0.1:PORT, its output in `log`; stopped by its own PID only."""

    policies: Path
    certs: Path
    port: int
    log: Path
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, *, wait: bool = True) -> None:
        ensure(not self.running, "already running")
        args = [
            "serve", "--policies", str(self.policies),
            "--cert", str(self.certs / "server.pem"), "--key", str(self.certs / "server-key.pem"),
            "--bind", f"127.0.0.1:{self.port}",
            # One worker is plenty for a test cluster and leaves the 2 CPUs to the control plane.
            "--workers", "1", "--graceful-timeout", "5",
            "--metrics-dir", str(self.log.with_suffix(".metrics")),
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [PODGATE, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                start_new_session=True,
            )
        if wait:
            wait_for(
                lambda: self.ready() or self.exited(), f"podgate on :{self.port} to be ready", timeout=30
            )
            ensure(self.ready(), f"podgate serve exited ({self.process.returncode}):\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM (the server finishes reviews in flight), SIGKILL if it is still there after 15 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def get(self, path: str) -> tuple[int, str]:
        """GET https://127.0.0.1:PORT/path with the suite's CA: (status, body), or (0, error) if no answer."""
        context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.port}{path}", context=context, timeout=5
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def reviews(self) -> Iterator[dict[str, Any]]:
        """The server's log lines about admission reviews, one JSON object each."""
        for line in self.log.read_text().splitlines():
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue  # a traceback, or anything else that is not a log record
            if entry.get("message") == "admission":
                yield entry

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:]) if self.log.exists() else ""
