"""`podgate serve` refuses to start on settings it cannot honour, before it listens anywhere.

Run as a subprocess: `serve` points prometheus_client at a multiprocess directory for the life of
the process, which must not leak into the other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.serving_support import PODGATE, free_port, pinned_policies
from tests.tls_support import Pki, write_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"))


def serve(pki: Pki, workdir: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODGATE_")}
    env.update(environ, PODGATE_METRICS_DIR=str(workdir / "metrics"))
    command = [
        str(PODGATE),
        "serve",
        "--policies",
        str(pinned_policies(workdir / "policies")),
        "--cert",
        str(pki.cert),
        "--key",
        str(pki.key),
        "--bind",
        f"127.0.0.1:{free_port()}",
        *args,
    ]
    # Generous: a server that did start would run until killed; these must exit on their own.
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=60)


def test_a_bad_read_timeout_is_named(pki: Pki, tmp_path: Path) -> None:
    done = serve(pki, tmp_path, "--read-timeout", "soon")
    assert done.returncode == 2
    assert "error: --read-timeout: must be a number of seconds (got 'soon')" in done.stderr


def test_a_client_ca_that_does_not_load_stops_the_server_and_says_which_file(
    pki: Pki, tmp_path: Path
) -> None:
    missing = tmp_path / "client-ca.pem"
    done = serve(pki, tmp_path, PODGATE_CLIENT_CA=str(missing))
    assert done.returncode == 1
    assert "error: not serving: the policies or the TLS certificate did not load" in done.stderr
    line = failure_line(done.stderr)
    assert line["message"] == "TLS certificate did not load"
    assert str(missing) in line["problems"][0]


def test_no_policies_stops_the_server_unless_allowed(pki: Pki, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = serve(pki, tmp_path, "--policies", str(empty))
    assert done.returncode == 1
    assert "error: not serving: the policies or the TLS certificate did not load" in done.stderr
    line = failure_line(done.stderr)
    assert (line["message"], line["problems"]) == (
        "policies did not load",
        [f"{empty}: no policy files (*.yaml, *.yml): with no policies podgate enforces nothing"],
    )


def test_allow_empty_loads_an_empty_set(pki: Pki, tmp_path: Path) -> None:
    from webhook.server.serving import open_sources
    from webhook.server.settings import Settings

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "resources.yaml").write_text("# enforcement switched off on purpose\n")
    policies, _ = open_sources(Settings(policies=empty, cert=pki.cert, key=pki.key, allow_empty=True))
    assert policies.healthy() and policies.current() is not None
    assert policies.current().names == ()  # type: ignore[union-attr]


def failure_line(stderr: str) -> dict[str, Any]:
    """The one JSON log line saying what did not load."""
    (line,) = [
        json.loads(text) for text in stderr.splitlines() if text.startswith("{") and "did not load" in text
    ]
    parsed: dict[str, Any] = line
    return parsed
