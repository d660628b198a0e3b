"""certinfo, check, needs_renewal and caBundle against certificates with known dates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes

from tests.pki.support import SERVER_HOSTS, Pki
from webhook.errors import PkiError
from webhook.pki.config import BUILTIN
from webhook.pki.csr import CAConfig, CertificateRequest
from webhook.pki.info import cabundle, check, covers, describe, needs_renewal, render
from webhook.pki.signer import init_ca, issue

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dated() -> tuple[object, object]:
    """A CA and a one-year server certificate, both issued at T0."""
    ca = init_ca(CertificateRequest(cn="dated CA", ca=CAConfig()), now=T0)
    leaf = issue(
        CertificateRequest(cn="web", hosts=("web.example", "10.1.2.3")),
        ca.cert,
        ca.key,
        BUILTIN.profile("server"),
        now=T0,
    )
    return ca, leaf


def test_describe_server(pki: Pki) -> None:
    info = describe(pki.server.cert, now=pki.server.cert.not_valid_before_utc + timedelta(days=10))
    assert info["subject"] == {"rfc4514": "CN=podgate", "common_name": "podgate"}
    assert info["issuer"]["common_name"] == "podgate test CA"
    assert info["issuer"]["organization"] == ["podgate"]
    assert info["sans"] == list(SERVER_HOSTS)
    assert info["days_left"] == 355
    assert info["key"] == {"algo": "ECDSA secp256r1", "size": 256}
    assert info["key_usages"] == ["digital signature"]
    assert info["ext_key_usages"] == ["server auth"]
    assert info["is_ca"] is False and info["path_len"] is None
    assert info["serial_number"] == str(pki.server.cert.serial_number)
    assert info["sigalg"] == "ECDSAWithSHA256"
    assert info["sha256_fingerprint"] == ":".join(
        f"{b:02X}" for b in pki.server.cert.fingerprint(hashes.SHA256())
    )
    assert info["authority_key_id"] == describe(pki.ca.cert)["subject_key_id"]
    assert info["pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_describe_ca_and_rsa(pki: Pki) -> None:
    ca = describe(pki.ca.cert)
    assert (ca["is_ca"], ca["path_len"], ca["key_usages"]) == (True, 0, ["cert sign", "crl sign"])
    peer = describe(pki.peer.cert)
    assert peer["key"] == {"algo": "RSA", "size": 2048}
    assert peer["key_usages"] == ["digital signature", "key encipherment"]
    assert peer["ext_key_usages"] == ["server auth", "client auth"]


def test_render_lists_every_field(pki: Pki) -> None:
    text = render(describe(pki.server.cert))
    labels = [line.split(":", 1)[0] for line in text.splitlines()]
    assert labels == [
        "subject", "issuer", "SANs", "not before", "not after", "days left", "key", "CA", "key usages",
        "ext key usages", "serial", "signature", "subject key id", "authority key id", "SHA-256",
    ]  # fmt: skip
    assert "SANs:             podgate, podgate.podgate," in text


def test_check_passes_for_covered_hosts(pki: Pki) -> None:
    assert check(pki.server.cert, pki.ca.cert, SERVER_HOSTS, days=30) == []


def test_check_reports_every_problem(dated: tuple) -> None:
    ca, leaf = dated
    problems = check(
        leaf.cert, ca.cert, ["web.example", "api.example"], days=90, now=T0 + timedelta(days=300)
    )
    assert problems == [
        "SANs do not cover api.example (SANs: web.example, 10.1.2.3)",
        "expires in 65 days, within the required 90",
    ]


def test_check_expired_and_foreign_ca(pki: Pki, dated: tuple) -> None:
    ca, leaf = dated
    assert check(leaf.cert, ca.cert, now=T0 + timedelta(days=400)) == [
        f"the certificate expired on {leaf.cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z"
    ]
    foreign = check(leaf.cert, pki.ca.cert, now=T0 + timedelta(days=1))
    assert foreign[0] == "issued by CN=dated CA, not by CN=podgate test CA,O=podgate"


def test_check_refuses_a_client_cert_for_serving(pki: Pki) -> None:
    assert check(pki.client.cert, pki.ca.cert, ["localhost"]) == [
        "SANs do not cover localhost (SANs: none)",
        "not usable as a TLS server certificate (no 'server auth' extended key usage)",
    ]


@pytest.mark.parametrize(
    ("host", "covered"),
    [
        ("web.example", True),
        ("WEB.example.", True),
        ("10.1.2.3", True),
        ("10.1.2.4", False),
        ("example", False),
    ],
)
def test_covers(dated: tuple, host: str, covered: bool) -> None:
    assert covers(dated[1].cert, host) is covered


def test_wildcard_covers_one_label_only() -> None:
    ca = init_ca(CertificateRequest(cn="ca", ca=CAConfig()), now=T0)
    leaf = issue(
        CertificateRequest(hosts=("*.svc.example",)), ca.cert, ca.key, BUILTIN.profile("server"), now=T0
    )
    assert covers(leaf.cert, "a.svc.example")
    assert not covers(leaf.cert, "a.b.svc.example")
    assert not covers(leaf.cert, "svc.example")


def test_needs_renewal_only_in_the_last_third(dated: tuple) -> None:
    ca, leaf = dated
    early = needs_renewal(leaf.cert, ca=ca.cert, now=T0 + timedelta(days=200))
    assert not early.due
    assert early.reason == "valid until 2031-01-01, 165 days left; renewal due from 2030-09-01"
    late = needs_renewal(leaf.cert, ca=ca.cert, now=T0 + timedelta(days=250))
    assert late.due
    assert (
        late.reason
        == "in its renewal window since 2030-09-01 07:58Z (115 of 365 days left, renewing in the last 33%)"
    )


def test_needs_renewal_window_fraction(dated: tuple) -> None:
    _, leaf = dated
    assert not needs_renewal(leaf.cert, window=0.1, now=T0 + timedelta(days=300)).due
    assert needs_renewal(leaf.cert, window=0.5, now=T0 + timedelta(days=183)).due
    with pytest.raises(PkiError, match=r"^the renewal window must be a fraction in \(0, 1\] \(got 1.5\)$"):
        needs_renewal(leaf.cert, window=1.5)


def test_needs_renewal_for_expiry_hosts_and_ca(pki: Pki, dated: tuple) -> None:
    _, leaf = dated
    assert needs_renewal(leaf.cert, now=T0 + timedelta(days=366)).reason == "expired on 2031-01-01 00:00:00Z"
    assert needs_renewal(leaf.cert, hosts=["new.example"], now=T0).reason == "SANs do not cover new.example"
    foreign = needs_renewal(leaf.cert, ca=pki.ca.cert, now=T0)
    assert foreign.due and foreign.reason.startswith("not from the current CA: issued by CN=dated CA")


def test_cabundle_is_base64_of_the_pem(pki: Pki) -> None:
    pem = pki.path("ca.pem").read_bytes()
    assert base64.b64decode(cabundle(pem)) == pem
    with pytest.raises(PkiError, match=r"^CN=podgate is not a CA certificate"):
        cabundle(pki.path("server.pem").read_bytes())
    with pytest.raises(PkiError, match=r"^not a PEM certificate"):
        cabundle(b"hello")


def test_check_without_hosts_verifies_chain_and_dates_only(pki: Pki) -> None:
    assert check(pki.client.cert, pki.ca.cert) == []
    assert check(pki.peer.cert, pki.ca.cert, ["peer-0.podgate", "127.0.0.1"]) == []
