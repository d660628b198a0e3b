"""Test support for deploy/: throwaway certificates, a rendered copy of deploy/, and `kubectl kustomize`."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.cli import render_deploy

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
POLICIES = REPO / "policies"
SERVER_NAME = "podgate.podgate.svc"
# A fixed clock: certificates are issued around it and render() is told it is now.
NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)
# Stands in for policies/ when the repository has none yet.
SAMPLE_POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: sample
spec:
  rules:
    - name: team-label
      labels: {defaults: {example.com/team: unknown}}
"""
# The extensions a TLS client's path validation expects (as `make certs` issues them).
CA_USAGE = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
SERVER_USAGE = x509.KeyUsage(True, False, True, False, False, False, False, False, False)


@dataclass(frozen=True)
class Authority:
    """A CA that can issue server certificates with whatever flaw a test needs."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def new_ca(name: str = "podgate test CA", *, is_ca: bool = True) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Wide enough to cover both NOW and the real clock (the command itself reads the real one).
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2040, 1, 1, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(CA_USAGE if is_ca else SERVER_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def write_server_cert(
    ca: Authority,
    certs_dir: Path,
    *,
    dns_names: Sequence[str] = (SERVER_NAME,),
    not_before: datetime.datetime = NOW - datetime.timedelta(days=1),
    not_after: datetime.datetime = NOW + datetime.timedelta(days=365),
    usages: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    key: ec.EllipticCurvePrivateKey | None = None,
) -> None:
    """ca.pem, server.pem and server-key.pem as `make certs` writes them (key may belong to another cert)."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podgate")]))
        .issuer_name(ca.cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(SERVER_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    leaf = builder.sign(ca.key, hashes.SHA256())
    certs_dir.mkdir(parents=True, exist_ok=True)
    (certs_dir / "ca.pem").write_bytes(ca.pem)
    (certs_dir / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (certs_dir / "server-key.pem").write_bytes(
        (key or leaf_key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def policy_dir(target: Path) -> Path:
    """The repository's policies, or one sample policy while policies/ is still empty."""
    target.mkdir(parents=True)
    shipped = sorted(POLICIES.glob("*.yaml"))
    for policy in shipped:
        shutil.copyfile(policy, target / policy.name)
    if not shipped:
        (target / "sample.yaml").write_text(SAMPLE_POLICY)
    return target


def rendered_copy(
    work: Path, certs_dir: Path, policies: Path, *, service: str = "podgate", namespace: str = "podgate"
) -> Path:
    """deploy/ copied into `work` (never the real deploy/generated/) with generated/ rendered into it."""
    deploy = work / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns("generated", ".generated*"))
    generated = deploy / "generated"
    render_deploy.render(certs_dir, policies, generated, service=service, namespace=namespace, now=NOW)
    return deploy


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, parsed. kubectl (with its built-in kustomize) is part of the machine image."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH: the deploy/ tests render with `kubectl kustomize`")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = (o for o in objects if o["kind"] == kind)
    return found
