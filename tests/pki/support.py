"""Helpers for the PKI tests: sample data, a written-out PKI, and the openssl CLI as an independent judge."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from webhook.pki import files
from webhook.pki.signer import Issued

DATA = Path(__file__).parent / "data"
SERVER_HOSTS = (
    "podgate",
    "podgate.podgate",
    "podgate.podgate.svc",
    "podgate.podgate.svc.cluster.local",
    "localhost",
    "127.0.0.1",
)


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Issued
    server: Issued
    client: Issued
    peer: Issued

    def path(self, name: str) -> Path:
        return self.directory / name


def write_issued(directory: Path, name: str, issued: Issued) -> None:
    files.write_file(directory / f"{name}.pem", files.cert_pem(issued.cert), private=False, force=True)
    files.write_file(directory / f"{name}-key.pem", files.key_pem(issued.key), private=True, force=True)
    files.write_file(directory / f"{name}.csr", files.csr_pem(issued.csr), private=False, force=True)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the openssl CLI: an independent X.509 implementation to judge what podgate writes."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )
