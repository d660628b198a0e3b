"""PEM files on disk: atomic writes, private keys 0600, and no silent overwrite of a CA or a key."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.errors import PkiError
from webhook.pki.csr import PrivateKey

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """Fail before writing anything if any target exists, so a refused run leaves no half-written set."""
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise PkiError(
            f"refusing to overwrite {', '.join(existing)}: pass --force to replace "
            "(a replaced CA invalidates every certificate issued from it)"
        )


def write_file(path: Path, data: bytes, *, private: bool, force: bool) -> None:
    """Write `data` to `path` atomically: readers see the old file or the new one, never a torn one.

    The temporary file is created 0600 and only a public file is widened, so a key is never readable
    by others, not even for an instant. Without `force`, the file is linked into place, which fails if
    the name exists, so two concurrent runs cannot clobber each other's CA.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, PRIVATE_MODE if private else PUBLIC_MODE)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise PkiError(f"refusing to overwrite {path}: pass --force to replace it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is; losing a fresh CA key to a crash is costly.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def key_pem(key: PrivateKey) -> bytes:
    # cfssl writes PKCS#1 "RSA PRIVATE KEY" and SEC1 "EC PRIVATE KEY"; the same encoding keeps the files
    # interchangeable with cfssl's and readable by every TLS stack.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise PkiError(f"{path}: cannot read {what}: {exc.strerror}") from exc


def load_certificate(path: str | Path) -> x509.Certificate:
    """The first certificate of a PEM file."""
    data = _read(path, "certificate")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PkiError(f"{path}: not a PEM certificate") from None
    return certs[0]


def load_private_key(path: str | Path) -> PrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PkiError(f"{path}: the private key is encrypted; podgate needs it unencrypted") from None
    except ValueError:
        raise PkiError(f"{path}: not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: {type(key).__name__} keys are not supported (RSA or ECDSA only)")
    return key
