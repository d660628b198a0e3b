"""Issued certificates as openssl sees them: chains verify, cfssl's extensions, bounded validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.pki.support import Pki, openssl
from webhook.errors import PkiError
from webhook.pki.config import BUILTIN, SigningProfile
from webhook.pki.csr import CAConfig, CertificateRequest, KeyRequest, build_csr
from webhook.pki.signer import SERIAL_BITS, init_ca, issue, sign

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_openssl_verifies_every_leaf(pki: Pki) -> None:
    for name, purpose in (("server", "sslserver"), ("client", "sslclient"), ("peer", "sslserver")):
        result = openssl(
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            pki.path("ca.pem"),
            pki.path(f"{name}.pem"),
        )
        assert (result.returncode, result.stdout.strip()) == (0, f"{pki.path(f'{name}.pem')}: OK"), (
            result.stderr
        )


def test_openssl_rejects_server_cert_for_client_purpose(pki: Pki) -> None:
    result = openssl("verify", "-purpose", "sslclient", "-CAfile", pki.path("ca.pem"), pki.path("server.pem"))
    assert result.returncode != 0
    assert "error 26 at 0 depth lookup: unsuitable certificate purpose" in result.stdout + result.stderr


def test_openssl_rejects_a_foreign_ca_with_the_same_name(pki: Pki) -> None:
    other = init_ca(CertificateRequest(cn="podgate test CA", names=({"O": "podgate"},), ca=CAConfig()))
    path = pki.directory / "other-ca.pem"
    path.write_bytes(other.cert.public_bytes(serialization.Encoding.PEM))
    result = openssl("verify", "-CAfile", path, pki.path("server.pem"))
    assert result.returncode != 0


def _text(path: object) -> str:
    result = openssl("x509", "-in", path, "-text", "-noout")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ca_extensions_in_openssl_text(pki: Pki) -> None:
    text = _text(pki.path("ca.pem"))
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "Signature Algorithm: ecdsa-with-SHA256" in text


def test_server_extensions_in_openssl_text(pki: Pki) -> None:
    text = _text(pki.path("server.pem"))
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert "X509v3 Key Usage: critical\n                Digital Signature\n" in text
    assert "X509v3 Extended Key Usage: \n                TLS Web Server Authentication\n" in text
    assert (
        "DNS:podgate, DNS:podgate.podgate, DNS:podgate.podgate.svc, DNS:podgate.podgate.svc.cluster.local, "
        "DNS:localhost, IP Address:127.0.0.1" in text
    )
    ca_ski = pki.ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = ":".join(f"{b:02X}" for b in ca_ski)
    assert f"X509v3 Authority Key Identifier: \n                {aki}" in text
    assert "X509v3 Subject Key Identifier" in text


def test_rsa_peer_has_key_encipherment_and_both_usages(pki: Pki) -> None:
    text = _text(pki.path("peer.pem"))
    assert "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "IP Address:127.0.0.1" in text


def test_ec_leaf_never_claims_key_encipherment(pki: Pki) -> None:
    usage = pki.server.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment and not usage.data_encipherment


def test_openssl_reads_the_csr_and_key(pki: Pki) -> None:
    csr = openssl("req", "-in", pki.path("server.csr"), "-noout", "-verify")
    assert csr.returncode == 0, csr.stderr
    key = openssl("pkey", "-in", pki.path("server-key.pem"), "-noout")
    assert key.returncode == 0, key.stderr
    assert pki.path("server-key.pem").read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    assert pki.path("peer-key.pem").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_leaf_is_backdated_and_lives_a_profile_expiry() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig()), now=NOW)
    leaf = issue(
        CertificateRequest(cn="x", hosts=("x",)), ca.cert, ca.key, BUILTIN.profile("server"), now=NOW
    )
    assert leaf.cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert leaf.cert.not_valid_after_utc == NOW + timedelta(hours=8760)
    assert ca.cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert ca.cert.not_valid_after_utc == NOW + timedelta(hours=43800)


def test_ca_expiry_comes_from_the_request() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig(expiry=timedelta(hours=24), pathlen=1)), now=NOW)
    assert ca.cert.not_valid_after_utc == NOW + timedelta(hours=24)
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (constraints.critical, constraints.value.ca, constraints.value.path_length) == (True, True, 1)


def test_leaf_never_outlives_its_ca() -> None:
    ca = init_ca(CertificateRequest(cn="short-lived ca", ca=CAConfig(expiry=timedelta(hours=48))), now=NOW)
    leaf = issue(CertificateRequest(cn="x"), ca.cert, ca.key, BUILTIN.profile("client"), now=NOW)
    assert leaf.cert.not_valid_after_utc == ca.cert.not_valid_after_utc == NOW + timedelta(hours=48)


def test_serials_are_random_128_bit() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig()), now=NOW)
    request = CertificateRequest(cn="x")
    serials = {
        issue(request, ca.cert, ca.key, BUILTIN.profile("client"), now=NOW).cert.serial_number
        for _ in range(8)
    }
    assert len(serials) == 8
    assert all(0 < s < 2**SERIAL_BITS for s in serials)


def test_signature_hash_follows_the_ca_key() -> None:
    ca = init_ca(CertificateRequest(cn="ca", key=KeyRequest("ecdsa", 384), ca=CAConfig()), now=NOW)
    leaf = issue(CertificateRequest(cn="x"), ca.cert, ca.key, BUILTIN.profile("client"), now=NOW)
    assert ca.cert.signature_hash_algorithm is not None and ca.cert.signature_hash_algorithm.name == "sha384"
    assert (
        leaf.cert.signature_hash_algorithm is not None and leaf.cert.signature_hash_algorithm.name == "sha384"
    )


def test_empty_subject_makes_sans_critical() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig()), now=NOW)
    leaf = issue(
        CertificateRequest(hosts=("svc.example",)), ca.cert, ca.key, BUILTIN.profile("server"), now=NOW
    )
    assert leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_refuses_mismatched_expired_or_non_ca_signers() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig(expiry=timedelta(hours=1))), now=NOW)
    other_key = ec.generate_private_key(ec.SECP256R1())
    request = CertificateRequest(cn="x")
    profile = BUILTIN.profile("server")
    with pytest.raises(PkiError, match=r"^the CA key does not belong to the CA certificate$"):
        issue(request, ca.cert, other_key, profile, now=NOW)
    with pytest.raises(PkiError, match=r"^the CA expired on 2030-06-01 13:00:00Z$"):
        issue(request, ca.cert, ca.key, profile, now=NOW + timedelta(hours=2))
    leaf = issue(request, ca.cert, ca.key, profile, now=NOW)
    with pytest.raises(PkiError, match=r"^CN=x is not a CA certificate \(no CA:TRUE\)$"):
        issue(request, leaf.cert, leaf.key, profile, now=NOW)


def test_sign_refuses_a_tampered_csr() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig()), now=NOW)
    csr = build_csr(CertificateRequest(cn="x"), ec.generate_private_key(ec.SECP256R1()))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(PkiError, match="signature does not verify"):
        sign(tampered, ca.cert, ca.key, BUILTIN.profile("server"), now=NOW)


def test_custom_profile_usages_and_expiry() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig()), now=NOW)
    profile = SigningProfile("signer", ("digital signature", "code signing"), expiry=timedelta(hours=1))
    leaf = issue(CertificateRequest(cn="x", key=KeyRequest("rsa", 2048)), ca.cert, ca.key, profile, now=NOW)
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]
    assert not leaf.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert leaf.cert.not_valid_after_utc == NOW + timedelta(hours=1)
