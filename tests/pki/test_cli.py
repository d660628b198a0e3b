"""`podgate certs` end to end in a temporary directory, including the sequence `make certs` runs."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from tests.pki.support import DATA, SERVER_HOSTS, openssl, write_issued
from webhook.cli import main
from webhook.pki.config import BUILTIN
from webhook.pki.csr import CAConfig, CertificateRequest
from webhook.pki.files import load_certificate, load_private_key
from webhook.pki.signer import init_ca, issue

REPO_CERTS = Path(__file__).resolve().parents[2] / "certs"


def certs(*args: str | Path) -> int:
    return main(["certs", *map(str, args)])


def signed_by(directory: Path) -> list[str | Path]:
    return ["--ca", directory / "ca.pem", "--ca-key", directory / "ca-key.pem"]


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    assert certs("init-ca", "--out-dir", tmp_path, DATA / "ca-csr.json") == 0
    return tmp_path


def test_init_ca_writes_cfssl_names_into_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert certs("init-ca") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca-key.pem", "ca.csr", "ca.pem"]
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600
    assert "wrote ca.pem, ca-key.pem (0600), ca.csr" in capsys.readouterr().out
    ca = load_certificate(tmp_path / "ca.pem")
    assert ca.subject.rfc4514_string() == "CN=podgate CA"
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(hours=43800, minutes=5)


def test_existing_ca_is_not_overwritten_without_force(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digests(ca_dir)
    capsys.readouterr()
    assert certs("init-ca", "--out-dir", ca_dir, DATA / "ca-csr.json") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"podgate certs init-ca: error: refusing to overwrite {ca_dir / 'ca.pem'}, ")
    assert "pass --force to replace (a replaced CA invalidates every certificate issued from it)" in err
    assert digests(ca_dir) == before
    assert certs("init-ca", "--keep-existing", "--out-dir", ca_dir, DATA / "ca-csr.json") == 0
    assert digests(ca_dir) == before
    assert certs("init-ca", "--force", "--out-dir", ca_dir, DATA / "ca-csr.json") == 0
    after = digests(ca_dir)
    assert after["ca.pem"] != before["ca.pem"] and after["ca-key.pem"] != before["ca-key.pem"]


def test_gencert_with_cfssl_config_and_sample(ca_dir: Path) -> None:
    args = [*signed_by(ca_dir), "--config", DATA / "ca-config.json"]
    assert certs("gencert", *args, "--profile", "www", "--out-dir", ca_dir, DATA / "csr.json") == 0
    assert certs("gencert", *args, "--profile", "member", "--out-dir", ca_dir, DATA / "member-csr.json") == 0
    bot = ["--profile", "client", "--out-dir", ca_dir, "--name", "bot"]
    assert certs("gencert", *args, *bot, DATA / "client-csr.json") == 0
    for name in ("csr", "member", "bot"):
        assert stat.S_IMODE((ca_dir / f"{name}-key.pem").stat().st_mode) == 0o600
        result = openssl("verify", "-CAfile", ca_dir / "ca.pem", ca_dir / f"{name}.pem")
        assert result.returncode == 0, result.stdout + result.stderr
    www = load_certificate(ca_dir / "csr.pem")
    assert www.not_valid_after_utc - www.not_valid_before_utc == timedelta(hours=8760, minutes=5)


def test_gencert_hostname_flag_replaces_hosts(ca_dir: Path) -> None:
    hostnames = ["--hostname", "a.example,10.0.0.9", "--hostname", "b.example"]
    args = ["gencert", *signed_by(ca_dir), "--profile", "server", *hostnames, "--out-dir", ca_dir]
    assert certs(*args, DATA / "csr.json") == 0
    result = openssl("x509", "-in", ca_dir / "csr.pem", "-noout", "-ext", "subjectAltName")
    assert "DNS:a.example, IP Address:10.0.0.9, DNS:b.example" in result.stdout


@pytest.mark.parametrize(
    ("extra", "csr_json", "message"),
    [
        (["--profile", "server"], "rsa-1024", "key.size: RSA keys must be 2048 to 8192 bits (got 1024)"),
        (["--profile", "server"], "bad-algo", "key.algo: must be 'rsa' or 'ecdsa' (got 'dsa')"),
        (["--profile", "www"], "csr", "no signing profile 'www' (profiles: client, peer, server)"),
    ],
    ids=["rsa-1024", "bad-algo", "unknown-profile"],
)
def test_gencert_errors_write_nothing(
    ca_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], csr_json: str, message: str
) -> None:
    (ca_dir / "rsa-1024-csr.json").write_text('{"CN": "x", "key": {"algo": "rsa", "size": 1024}}')
    (ca_dir / "bad-algo-csr.json").write_text('{"CN": "x", "key": {"algo": "dsa", "size": 2048}}')
    source = DATA / "csr.json" if csr_json == "csr" else ca_dir / f"{csr_json}-csr.json"
    before = set(digests(ca_dir))
    capsys.readouterr()
    assert certs("gencert", *signed_by(ca_dir), *extra, "--out-dir", ca_dir, source) == 1
    err = capsys.readouterr().err
    assert err.startswith("podgate certs gencert: error: ") and err.rstrip().endswith(message)
    assert set(digests(ca_dir)) == before


def test_gencert_keeps_an_existing_key_without_force(ca_dir: Path) -> None:
    args = ["gencert", *signed_by(ca_dir), "--profile", "server"]
    assert certs(*args, "--out-dir", ca_dir, "--name", "web", DATA / "csr.json") == 0
    key = (ca_dir / "web-key.pem").read_bytes()
    assert certs(*args, "--out-dir", ca_dir, "--name", "web", DATA / "csr.json") == 1
    assert (ca_dir / "web-key.pem").read_bytes() == key
    assert certs(*args, "--out-dir", ca_dir, "--name", "web", "--force", DATA / "csr.json") == 0
    assert (ca_dir / "web-key.pem").read_bytes() != key


def test_info_text_and_json(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert certs("info", ca_dir / "ca.pem") == 0
    text = capsys.readouterr().out
    assert "CA:               yes, pathlen 0" in text
    assert "key:              RSA (2048 bits)" in text
    assert certs("info", "-o", "json", ca_dir / "ca.pem") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subject"]["common_name"] == "Example Shop Root CA"
    assert info["key_usages"] == ["cert sign", "crl sign"]
    assert certs("info", ca_dir / "nope.pem") == 1


def test_check_exit_codes(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["gencert", *signed_by(ca_dir), "--profile", "server", "--out-dir", ca_dir, "--name", "server"]
    assert certs(*args, REPO_CERTS / "server-csr.json") == 0
    base = ["check", "--ca", ca_dir / "ca.pem", "--cert", ca_dir / "server.pem"]
    capsys.readouterr()
    assert certs(*base, "--hosts", ",".join(SERVER_HOSTS), "--days", "30") == 0
    assert "ok: chains to" in capsys.readouterr().out
    assert certs(*base, "--hosts", "other.example") == 1
    assert "SANs do not cover other.example" in capsys.readouterr().err
    assert certs(*base, "--days", "400") == 1
    assert certs("check", "--ca", ca_dir / "server.pem", "--cert", ca_dir / "server.pem") == 1


def _dated_server(directory: Path, issued_days_ago: int) -> None:
    """A CA and a server certificate issued `issued_days_ago` days ago, written as make certs would."""
    then = datetime.now(UTC) - timedelta(days=issued_days_ago)
    ca = init_ca(CertificateRequest(cn="dated CA", ca=CAConfig()), now=then)
    server = issue(
        CertificateRequest(cn="podgate", hosts=SERVER_HOSTS),
        ca.cert,
        ca.key,
        BUILTIN.profile("server"),
        now=then,
    )
    write_issued(directory, "ca", ca)
    write_issued(directory, "server", server)


def renew(directory: Path, *extra: str) -> int:
    return certs("renew", *signed_by(directory), "--cert", directory / "server.pem", *extra)


def test_renew_does_nothing_outside_the_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _dated_server(tmp_path, issued_days_ago=100)
    before = digests(tmp_path)
    capsys.readouterr()
    assert renew(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'server.pem'}: not renewed: valid until ")
    assert "days left; renewal due from" in out
    assert digests(tmp_path) == before


def test_renew_in_the_window_keeps_subject_sans_and_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _dated_server(tmp_path, issued_days_ago=300)
    old = load_certificate(tmp_path / "server.pem")
    before = digests(tmp_path)
    capsys.readouterr()
    assert renew(tmp_path) == 0
    assert "renewed (in its renewal window since" in capsys.readouterr().out
    new = load_certificate(tmp_path / "server.pem")
    assert new.subject == old.subject
    san = x509.SubjectAlternativeName
    assert new.extensions.get_extension_for_class(san) == old.extensions.get_extension_for_class(san)
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc
    assert load_private_key(tmp_path / "server-key.pem").public_key() == new.public_key()
    after = digests(tmp_path)
    assert after["ca.pem"] == before["ca.pem"]  # the caBundle does not change
    assert after["server-key.pem"] != before["server-key.pem"]
    assert stat.S_IMODE((tmp_path / "server-key.pem").stat().st_mode) == 0o600
    assert openssl("verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "server.pem").returncode == 0


def test_renew_force_and_window_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _dated_server(tmp_path, issued_days_ago=100)
    capsys.readouterr()
    assert renew(tmp_path, "--window", "0.75") == 0
    assert "renewed (in its renewal window" in capsys.readouterr().out
    assert renew(tmp_path, "--force") == 0
    assert "renewed (--force)" in capsys.readouterr().out
    assert renew(tmp_path, "--window", "2") == 1
    assert "the renewal window must be a fraction in (0, 1] (got 2.0)" in capsys.readouterr().err


def test_renew_issues_a_missing_certificate_only_from_a_csr(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert renew(ca_dir) == 1
    assert "server.pem does not exist: give --csr CSR_JSON to issue it" in capsys.readouterr().err
    assert renew(ca_dir, "--csr", str(REPO_CERTS / "server-csr.json")) == 0
    assert "renewed (" in capsys.readouterr().out
    assert load_certificate(ca_dir / "server.pem").extensions  # issued


def test_cabundle(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert certs("cabundle", ca_dir / "ca.pem") == 0
    assert base64.b64decode(capsys.readouterr().out.strip()) == (ca_dir / "ca.pem").read_bytes()


def make_certs(directory: Path, service: str = "podgate", namespace: str = "podgate") -> None:
    """The two commands of the Makefile's `certs` target, run in-process."""
    hosts = [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]
    assert certs("init-ca", "--keep-existing", "--out-dir", directory, directory / "ca-csr.json") == 0
    profile = ["--config", directory / "ca-config.json", "--profile", "server"]
    request = ["--csr", directory / "server-csr.json", "--hostname", ",".join(hosts)]
    assert certs("renew", *signed_by(directory), *profile, *request, "--cert", directory / "server.pem") == 0


def test_make_certs_sequence_is_idempotent(tmp_path: Path) -> None:
    for name in ("ca-csr.json", "server-csr.json", "ca-config.json"):
        shutil.copy(REPO_CERTS / name, tmp_path / name)
    make_certs(tmp_path)
    produced = {p.name for p in tmp_path.iterdir()} - {"ca-csr.json", "server-csr.json", "ca-config.json"}
    assert produced == {"ca.pem", "ca-key.pem", "ca.csr", "server.pem", "server-key.pem", "server.csr"}
    strict = ["-x509_strict", "-purpose", "sslserver"]
    result = openssl("verify", *strict, "-CAfile", tmp_path / "ca.pem", tmp_path / "server.pem")
    assert result.returncode == 0, result.stdout + result.stderr
    first = digests(tmp_path)
    make_certs(tmp_path)
    assert digests(tmp_path) == first
    make_certs(tmp_path, service="gate", namespace="infra")
    second = digests(tmp_path)
    assert second["ca.pem"] == first["ca.pem"] and second["server.pem"] != first["server.pem"]
    hosts = "gate.infra.svc,gate.infra.svc.cluster.local,127.0.0.1"
    assert (
        certs("check", "--ca", tmp_path / "ca.pem", "--cert", tmp_path / "server.pem", "--hosts", hosts) == 0
    )


def test_renew_keeps_an_orphaned_key_without_force(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ca_dir / "server-key.pem").write_bytes(b"someone's key")
    capsys.readouterr()
    assert renew(ca_dir, "--csr", str(REPO_CERTS / "server-csr.json")) == 1
    assert f"refusing to overwrite {ca_dir / 'server-key.pem'}" in capsys.readouterr().err
    assert (ca_dir / "server-key.pem").read_bytes() == b"someone's key"
    assert renew(ca_dir, "--csr", str(REPO_CERTS / "server-csr.json"), "--force") == 0
