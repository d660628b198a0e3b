"""`podgate serve --client-ca`: only clients with a certificate from that CA get past the probes."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_support import by_kind, kustomize, new_ca, policy_dir, rendered_copy, write_server_cert
from tests.serving_support import (
    APISERVER_HEADERS,
    Server,
    fixture_files,
    pinned_policies,
    serve,
)
from tests.tls_support import Pki, issue, write_pki

pytestmark = pytest.mark.serving

Identity = tuple[Path, Path]
PICKUP_DEADLINE = 20.0


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The CA the apiserver's client certificate comes from (a separate one from the server's)."""
    return write_pki(tmp_path_factory.mktemp("clients"))


def client_identity(ca: Pki, directory: Path, name: str = "kube-apiserver") -> Identity:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    issue(ca, cert, key, name, client=True)
    return cert, key


@pytest.fixture(scope="module")
def server(pki: Pki, clients: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    client_ca = workdir / "client-ca.pem"
    shutil.copy(clients.ca, client_ca)
    with serve(
        pinned_policies(workdir / "policies"), pki, workdir, args=["--client-ca", str(client_ca)]
    ) as up:
        yield up


def review() -> bytes:
    return fixture_files("mutate")[0].read_bytes()


def test_the_apiserver_s_client_certificate_is_served(server: Server, clients: Pki, tmp_path: Path) -> None:
    identity = client_identity(clients, tmp_path)
    conn = server.connect(identity=identity)
    status, answer = server.post_review("/mutate", review(), conn)
    assert status == 200 and answer["response"]["allowed"] is True
    assert server.request("GET", "/metrics", conn=conn)[0] == 200
    conn.close()


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/mutate"), ("POST", "/validate"), ("GET", "/metrics")]
)
def test_without_a_client_certificate_only_the_probes_answer(server: Server, method: str, path: str) -> None:
    body = review() if method == "POST" else None
    status, _, data = server.request(method, path, body, APISERVER_HEADERS)
    assert (status, json.loads(data)) == (
        403,
        {"error": "a client certificate from the webhook's client CA is required"},
    )
    # kubelet probes cannot present a certificate: they still work.
    assert server.request("GET", "/healthz")[0] == 200
    assert server.request("GET", "/readyz")[0] == 200


def refused(server: Server, identity: Identity) -> bool:
    """Whether a connection presenting `identity` is refused in the TLS layer (before any HTTP)."""
    try:
        server.request("GET", "/healthz", conn=server.connect(identity=identity))
    except (ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected):
        # TLS 1.3: the client finishes its half of the handshake first and meets the alert on reading.
        return True
    return False


def test_a_client_certificate_from_another_ca_is_refused_in_the_handshake(
    server: Server, tmp_path: Path
) -> None:
    stranger = write_pki(tmp_path / "stranger")
    assert refused(server, client_identity(stranger, tmp_path))


def test_a_server_certificate_from_the_client_ca_is_not_a_client_certificate(
    server: Server, clients: Pki
) -> None:
    # Same CA, but its extended key usage is server auth only.
    assert refused(server, (clients.cert, clients.key))


def test_a_replaced_client_ca_is_picked_up_without_a_restart(pki: Pki, tmp_path: Path) -> None:
    first, second = write_pki(tmp_path / "first"), write_pki(tmp_path / "second")
    client_ca = tmp_path / "client-ca.pem"
    shutil.copy(first.ca, client_ca)
    old, new = client_identity(first, tmp_path / "old"), client_identity(second, tmp_path / "new")
    args = ["--client-ca", str(client_ca)]
    with serve(pinned_policies(tmp_path / "policies"), pki, tmp_path, args=args) as server:
        assert not refused(server, old) and refused(server, new)

        staged = tmp_path / ".client-ca.pem"
        shutil.copy(second.ca, staged)
        staged.replace(client_ca)

        deadline = time.monotonic() + PICKUP_DEADLINE
        # Both workers must have reloaded: try a few connections each time.
        while not all(refused(server, old) and not refused(server, new) for _ in range(4)):
            assert time.monotonic() < deadline, "the new client CA was not picked up"
            time.sleep(0.1)


def test_the_client_auth_component_only_sets_the_client_ca_to_the_mounted_webhook_ca(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    write_server_cert(new_ca(), certs)
    deploy = rendered_copy(tmp_path, certs, policy_dir(tmp_path / "policies"))
    base = kustomize(deploy)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../deploy]\ncomponents: [../deploy/components/client-auth]\n"
    )
    switched = kustomize(overlay)

    (container,) = by_kind(switched, "Deployment")["spec"]["template"]["spec"]["containers"]
    (added,) = [e for e in container["env"] if e["name"] == "PODGATE_CLIENT_CA"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "tls")
    assert added["value"] == f"{mount}/ca.crt"
    container["env"].remove(added)
    assert switched == base
