"""`make e2e`: podgate against a real Kubernetes control plane (issue 15).

One session: install and start the control plane of ../shared/k8s in a temporary directory, on free ports;
make certificates with `podgate certs`; start `podgate serve` on the shipped policies/ on 127.0.0.1; render
deploy/ as `make deploy` would and register its two webhook configurations, pointed at that server; wait
until the apiserver calls them; run the cases; stop the server and the control plane (by their own PIDs
only) and remove the directory.

Settings (environment):
  PODGATE_E2E_K8S      the control-plane kit (default ../shared/k8s); absent: every case is skipped
  PODGATE_E2E_PODGATE  the podgate command (default .venv/bin/podgate)
  PODGATE_E2E_POLICIES the policies to serve and predict with (default policies/)
  PODGATE_E2E_DEPLOY   the deploy/ directory to register (default deploy/)
  (The last three let the suite judge another state of the project, e.g. a `git archive` of a commit.)
  PODGATE_E2E_KEEP=1   keep the temporary directory (logs of every component) after the run
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import PROBE_NAMESPACE, Cluster, ControlPlane
from tests.e2e.podgate import (
    DEPLOY,
    PODGATE,
    POLICIES,
    REPO,
    Server,
    make_certs,
    pointed_at,
    webhook_configurations,
)
from tests.e2e.support import free_port

E2E_DIR = Path(__file__).resolve().parent
KIT = Path(os.environ.get("PODGATE_E2E_K8S", REPO.parent / "shared" / "k8s"))
KEEP = os.environ.get("PODGATE_E2E_KEEP") == "1"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect the suite only when it is named on the command line (`make e2e` runs `pytest tests/e2e`):
    the plain `pytest` of `make test` walks tests/ and must not start a control plane."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    here = config.invocation_params.dir
    for arg in config.args:
        named = (here / arg.split("::")[0]).resolve()
        if named == E2E_DIR or E2E_DIR in named.parents:
            return None
    return True


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"e2e: control plane {KIT}", f"e2e: podgate {PODGATE}, policies {POLICIES}, deploy {DEPLOY}"]


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if not (KIT / "up.sh").exists():
        pytest.skip(f"no control-plane kit at {KIT} (../shared/k8s): the e2e suite needs one")
    if shutil.which("kubectl") is None:
        pytest.fail(
            "kubectl is not on PATH: the suite renders deploy/ with `kubectl kustomize` and drives kubectl"
        )
    work = Path(tempfile.mkdtemp(prefix="podgate-e2e-"))
    plane = ControlPlane(KIT, work / "k8s")
    server: Server | None = None
    try:
        plane.up()
        certs = make_certs(work / "certs")
        server = Server(POLICIES, certs, free_port(), work / "podgate.log")
        server.start()
        rendered = webhook_configurations(DEPLOY, certs, POLICIES, work)
        api = plane.api()
        for configuration in rendered:
            api.must_create(pointed_at(configuration, server.port))
        world = Cluster(plane, api, server, work, certs, rendered)
        world.namespace(PROBE_NAMESPACE)
        world.wait_registered()
        yield world
        api.close()
    finally:
        if server is not None:
            server.stop()
        plane.down()
        if KEEP:
            request.config.get_terminal_writer().line(f"e2e: kept {work} (PODGATE_E2E_KEEP=1)")
        else:
            shutil.rmtree(work, ignore_errors=True)
