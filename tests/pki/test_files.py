"""Key files are 0600 from the first byte, writes are atomic, and nothing is overwritten without force."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from webhook.errors import PkiError
from webhook.pki.files import load_certificate, load_private_key, refuse_existing, write_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_are_0600_and_public_0644(tmp_path: Path) -> None:
    write_file(tmp_path / "k.pem", b"secret", private=True, force=False)
    write_file(tmp_path / "c.pem", b"public", private=False, force=False)
    assert (mode(tmp_path / "k.pem"), mode(tmp_path / "c.pem")) == (0o600, 0o644)
    assert (tmp_path / "k.pem").read_bytes() == b"secret"


def test_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    target = tmp_path / "ca-key.pem"
    write_file(target, b"original", private=True, force=False)
    with pytest.raises(PkiError) as err:
        write_file(target, b"replacement", private=True, force=False)
    assert str(err.value) == f"refusing to overwrite {target}: pass --force to replace it"
    assert target.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca-key.pem"]  # no temporary file left behind


def test_force_replaces_and_tightens_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "server-key.pem"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_file(target, b"new", private=True, force=True)
    assert (target.read_bytes(), mode(target)) == (b"new", 0o600)


def test_output_directory_is_created(tmp_path: Path) -> None:
    write_file(tmp_path / "a" / "b" / "ca.pem", b"x", private=False, force=False)
    assert (tmp_path / "a" / "b" / "ca.pem").exists()


def test_refuse_existing_names_every_existing_file(tmp_path: Path) -> None:
    for name in ("ca.pem", "ca-key.pem"):
        (tmp_path / name).write_bytes(b"x")
    paths = [tmp_path / n for n in ("ca.pem", "ca-key.pem", "ca.csr")]
    with pytest.raises(PkiError) as err:
        refuse_existing(paths, force=False)
    assert str(err.value) == (
        f"refusing to overwrite {tmp_path / 'ca.pem'}, {tmp_path / 'ca-key.pem'}: pass --force to replace "
        "(a replaced CA invalidates every certificate issued from it)"
    )
    refuse_existing(paths, force=True)


def test_load_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not pem")
    with pytest.raises(PkiError, match=r"missing\.pem: no such certificate file$"):
        load_certificate(tmp_path / "missing.pem")
    with pytest.raises(PkiError, match=r"garbage\.pem: not a PEM certificate$"):
        load_certificate(garbage)
    with pytest.raises(PkiError, match=r"garbage\.pem: not a PEM private key$"):
        load_private_key(garbage)


def test_encrypted_and_unsupported_keys_are_refused(tmp_path: Path) -> None:
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(PkiError, match=r"the private key is encrypted; podgate needs it unencrypted$"):
        load_private_key(encrypted)
    edwards = tmp_path / "ed.pem"
    edwards.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(PkiError, match=r"Ed25519PrivateKey keys are not supported \(RSA or ECDSA only\)$"):
        load_private_key(edwards)
