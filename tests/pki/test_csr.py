"""CSR JSON: cfssl's samples load, keys come out as requested, and bad input is refused by field."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.pki.support import DATA
from webhook.errors import PkiError
from webhook.pki.csr import (
    CertificateRequest,
    KeyRequest,
    build_csr,
    classify_host,
    load_request,
    parse_request,
    request_from_certificate,
)


def test_cfssl_sample_without_cn_is_accepted() -> None:
    request = load_request(DATA / "csr.json")
    assert request.cn == ""
    assert request.hosts == ("shop.example.org", "www.shop.example.org")
    assert request.key == KeyRequest("ecdsa", 256)
    assert request.ca is None
    assert request.names == (
        {"C": "NL", "L": "Utrecht", "O": "Example Shop B.V.", "OU": "Web", "ST": "Utrecht"},
    )


def test_cfssl_sample_ca_request() -> None:
    request = load_request(DATA / "ca-csr.json")
    assert request.key == KeyRequest("rsa", 2048)
    assert request.ca is not None
    assert request.ca.expiry == timedelta(hours=87600)
    assert request.ca.pathlen == 0


def test_client_sample_with_empty_host_has_no_sans() -> None:
    request = load_request(DATA / "client-csr.json")
    assert request.hosts == ()
    csr = build_csr(request, request.key.generate())
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_default_key_is_ecdsa_p256() -> None:
    key = parse_request({"CN": "x"}, "req").key.generate()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


@pytest.mark.parametrize(
    ("spec", "kind", "bits"),
    [
        ({"algo": "rsa", "size": 2048}, rsa.RSAPrivateKey, 2048),
        ({"algo": "rsa"}, rsa.RSAPrivateKey, 2048),
        ({"algo": "ecdsa", "size": 384}, ec.EllipticCurvePrivateKey, 384),
        ({"algo": "ecdsa", "size": 521}, ec.EllipticCurvePrivateKey, 521),
    ],
    ids=["rsa-2048", "rsa-default-size", "p384", "p521"],
)
def test_requested_keys(spec: dict[str, Any], kind: type, bits: int) -> None:
    key = parse_request({"key": spec}, "req").key.generate()
    assert isinstance(key, kind)
    assert key.key_size == bits


def test_csr_carries_subject_and_hosts_apart() -> None:
    request = load_request(DATA / "member-csr.json")
    csr = build_csr(request, KeyRequest("ecdsa", 256).generate())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=store-0,OU=Storage,O=Example Shop B.V.,C=NL"
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["store-0.store.data.svc.cluster.local"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.20.0.15"),
        ipaddress.ip_address("fd00::15"),
    ]


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("podgate.podgate.svc", x509.DNSName),
        ("*.podgate.svc", x509.DNSName),
        ("localhost", x509.DNSName),
        ("127.0.0.1", x509.IPAddress),
        ("::1", x509.IPAddress),
        ("ops@example.org", x509.RFC822Name),
        ("spiffe://cluster.local/ns/podgate/sa/podgate", x509.UniformResourceIdentifier),
    ],
)
def test_hosts_are_classified_like_cfssl(host: str, kind: type) -> None:
    assert isinstance(classify_host(host, "hosts[0]"), kind)


@pytest.mark.parametrize(
    "host", ["bad host", "-leading.example", "a..b", "ünïcode.example", "x" * 64 + ".com"]
)
def test_invalid_hosts(host: str) -> None:
    with pytest.raises(PkiError) as err:
        parse_request({"hosts": ["ok.example", host]}, "req")
    assert str(err.value) == f"req: hosts[1]: {host!r} is not a DNS name, IP address, email or URI"


def test_duplicate_hosts_are_dropped() -> None:
    assert parse_request({"hosts": ["a.example", "a.example", "1.2.3.4"]}, "r").hosts == (
        "a.example",
        "1.2.3.4",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("x", "req: must be a JSON object"),
        ({"cn": "lower"}, "req: unknown field 'cn' (allowed: CN, ca, hosts, key, names, serialnumber)"),
        ({"extensions": []}, "req: extensions: cfssl field not supported by podgate"),
        ({"CN": 5}, "req: CN: must be a string (got 5)"),
        ({"key": {"algo": "dsa", "size": 2048}}, "req: key.algo: must be 'rsa' or 'ecdsa' (got 'dsa')"),
        ({"key": {"algo": "ed25519"}}, "req: key.algo: must be 'rsa' or 'ecdsa' (got 'ed25519')"),
        (
            {"key": {"algo": "rsa", "size": 1024}},
            "req: key.size: RSA keys must be 2048 to 8192 bits (got 1024)",
        ),
        (
            {"key": {"algo": "rsa", "size": 16384}},
            "req: key.size: RSA keys must be 2048 to 8192 bits (got 16384)",
        ),
        (
            {"key": {"algo": "ecdsa", "size": 2048}},
            "req: key.size: ECDSA curves are 256, 384 or 521 (got 2048)",
        ),
        ({"key": {"algo": "rsa", "size": "2048"}}, "req: key.size: must be an integer (got '2048')"),
        ({"key": {"algo": "rsa", "bits": 2048}}, "req: key: unknown field 'bits' (allowed: algo, size)"),
        (
            {"hosts": "a.example"},
            "req: hosts: must be a list of DNS names and IP addresses (got 'a.example')",
        ),
        ({"names": [{"C": "USA"}]}, "req: names[0].C: must be a two-letter country code (got 'USA')"),
        ({"names": [{"CN": "x"}]}, "req: names[0]: unknown field 'CN' (allowed: C, L, O, OU, ST)"),
        (
            {"names": {"C": "US"}},
            "req: names: must be a list of objects with C, ST, L, O, OU (got {'C': 'US'})",
        ),
        (
            {"ca": {"expiry": "5y"}},
            "req: ca.expiry: must be a duration like \"8760h\" (units ns, us, ms, s, m, h; got '5y')",
        ),
        ({"ca": {"pathlen": -1}}, "req: ca.pathlen: must be a non-negative integer (got -1)"),
        ({"ca": {"pathlen": 1, "pathlenzero": True}}, "req: ca: pathlenzero is true but pathlen is 1"),
        (
            {"ca": {"expiry": "1h", "max_path": 1}},
            "req: ca: unknown field 'max_path' (allowed: backdate, expiry, pathlen, pathlenzero)",
        ),
    ],
    ids=[
        "not-object",
        "unknown-field",
        "unsupported-field",
        "cn-not-string",
        "bad-algo",
        "ed25519",
        "rsa-1024",
        "rsa-too-big",
        "bad-curve",
        "size-string",
        "unknown-key-field",
        "hosts-string",
        "bad-country",
        "cn-in-names",
        "names-object",
        "bad-ca-expiry",
        "negative-pathlen",
        "pathlen-conflict",
        "unknown-ca-field",
    ],
)
def test_request_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(PkiError) as err:
        parse_request(raw, "req")
    assert str(err.value) == message


def test_with_hosts_replaces_hosts_like_cfssl_hostname_flag() -> None:
    request = load_request(DATA / "csr.json").with_hosts(["api.example.org", "10.0.0.1"])
    assert request.hosts == ("api.example.org", "10.0.0.1")
    with pytest.raises(PkiError, match=r"--hostname\[0\]: 'no way' is not a DNS name"):
        request.with_hosts(["no way"])


def test_request_from_certificate_round_trips(pki: Any) -> None:
    request = request_from_certificate(pki.peer.cert)
    assert request == CertificateRequest(
        cn="peer-0", hosts=("peer-0.podgate", "127.0.0.1"), key=KeyRequest("rsa", 2048)
    )
    ca_request = request_from_certificate(pki.ca.cert)
    assert ca_request.names == ({"O": "podgate"},)
    assert pki.ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ca_request.cn
