"""What the server tests share: a CA and a server certificate per test module."""

from __future__ import annotations

import pytest

from tests.tls_support import Pki, write_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"))
