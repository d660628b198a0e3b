"""Shared PKI for the tests: one ECDSA CA with server, client and an RSA peer leaf, written to a directory."""

from __future__ import annotations

import pytest

from tests.pki.support import SERVER_HOSTS, Pki, write_issued
from webhook.pki.config import BUILTIN
from webhook.pki.csr import CAConfig, CertificateRequest, KeyRequest
from webhook.pki.signer import init_ca, issue


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = init_ca(CertificateRequest(cn="podgate test CA", names=({"O": "podgate"},), ca=CAConfig()))
    server = issue(
        CertificateRequest(cn="podgate", hosts=SERVER_HOSTS), ca.cert, ca.key, BUILTIN.profile("server")
    )
    client = issue(CertificateRequest(cn="kube-apiserver"), ca.cert, ca.key, BUILTIN.profile("client"))
    peer = issue(
        CertificateRequest(cn="peer-0", hosts=("peer-0.podgate", "127.0.0.1"), key=KeyRequest("rsa", 2048)),
        ca.cert,
        ca.key,
        BUILTIN.profile("peer"),
    )
    pki = Pki(directory, ca, server, client, peer)
    for name in ("ca", "server", "client", "peer"):
        write_issued(directory, name, getattr(pki, name))
    return pki
