"""cfssl's CSR JSON: parsed and checked whole, then turned into a private key and a PKCS#10 request."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from webhook.errors import PkiError
from webhook.pki.config import BACKDATE, CA_EXPIRY, parse_duration, read_json

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

# Key bounds as cfssl enforces them (csr/csr.go): RSA below 2048 bits is too weak, above 8192 too slow.
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192
RSA_DEFAULT_BITS = 2048
EC_CURVES: Mapping[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}
EC_DEFAULT_BITS = 256

# The subject attributes of a `names` entry, in the order Go writes them into a certificate.
NAME_ATTRIBUTES: Mapping[str, x509.ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
}
_REQUEST_FIELDS = frozenset({"CN", "names", "hosts", "key", "ca", "serialnumber"})
_UNSUPPORTED_REQUEST_FIELDS = frozenset({"extensions", "crl_url", "delegation_enabled"})
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class KeyRequest:
    """The `key` object: algorithm and size of the private key to generate."""

    algo: str = "ecdsa"
    size: int = EC_DEFAULT_BITS

    def generate(self) -> PrivateKey:
        if self.algo == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.size)
        return ec.generate_private_key(EC_CURVES[self.size])

    def __str__(self) -> str:
        return f"{self.algo}-{self.size}"


@dataclass(frozen=True)
class CAConfig:
    """The `ca` object of a CA's CSR JSON: lifetime and path length of the CA certificate."""

    expiry: timedelta = CA_EXPIRY
    pathlen: int = 0
    backdate: timedelta = BACKDATE


@dataclass(frozen=True)
class CertificateRequest:
    """A checked CSR JSON: everything needed to generate a key and a PKCS#10 request."""

    cn: str = ""
    names: tuple[Mapping[str, str], ...] = ()
    hosts: tuple[str, ...] = ()
    key: KeyRequest = field(default_factory=KeyRequest)
    ca: CAConfig | None = None
    serial_number: str = ""

    def with_hosts(self, hosts: Iterable[str]) -> CertificateRequest:
        """The request with its `hosts` replaced, as cfssl's `-hostname` flag does."""
        return replace(self, hosts=tuple(_checked_hosts(list(hosts), "--hostname")))


def _string(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise PkiError(f"{where}: must be a string (got {raw!r})")
    return raw


def _only(raw: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = sorted(allowed)
    for key in raw:
        if key not in allowed:
            raise PkiError(f"{where}: unknown field {key!r} (allowed: {', '.join(allowed)})")


def _key(raw: object, where: str) -> KeyRequest:
    if not isinstance(raw, dict):
        raise PkiError(f'{where}: must be an object like {{"algo": "ecdsa", "size": 256}} (got {raw!r})')
    _only(raw, ("algo", "size"), where)
    algo = raw.get("algo", "ecdsa")
    if algo not in ("rsa", "ecdsa"):
        raise PkiError(f"{where}.algo: must be 'rsa' or 'ecdsa' (got {algo!r})")
    size = raw.get("size", RSA_DEFAULT_BITS if algo == "rsa" else EC_DEFAULT_BITS)
    if not isinstance(size, int) or isinstance(size, bool):
        raise PkiError(f"{where}.size: must be an integer (got {size!r})")
    if algo == "rsa" and not RSA_MIN_BITS <= size <= RSA_MAX_BITS:
        raise PkiError(f"{where}.size: RSA keys must be {RSA_MIN_BITS} to {RSA_MAX_BITS} bits (got {size})")
    if algo == "ecdsa" and size not in EC_CURVES:
        raise PkiError(f"{where}.size: ECDSA curves are 256, 384 or 521 (got {size})")
    return KeyRequest(algo, size)


def _ca(raw: object, where: str) -> CAConfig:
    if not isinstance(raw, dict):
        raise PkiError(f'{where}: must be an object like {{"expiry": "43800h"}} (got {raw!r})')
    _only(raw, ("expiry", "pathlen", "pathlenzero", "backdate"), where)
    pathlen = raw.get("pathlen", 0)
    if not isinstance(pathlen, int) or isinstance(pathlen, bool) or pathlen < 0:
        raise PkiError(f"{where}.pathlen: must be a non-negative integer (got {pathlen!r})")
    # cfssl needs `pathlenzero` to tell "0" from "unset"; podgate's default is already 0.
    if not isinstance(raw.get("pathlenzero", False), bool):
        raise PkiError(f"{where}.pathlenzero: must be true or false (got {raw['pathlenzero']!r})")
    if raw.get("pathlenzero") and pathlen:
        raise PkiError(f"{where}: pathlenzero is true but pathlen is {pathlen}")
    return CAConfig(
        expiry=parse_duration(raw["expiry"], f"{where}.expiry") if "expiry" in raw else CA_EXPIRY,
        pathlen=pathlen,
        backdate=parse_duration(raw["backdate"], f"{where}.backdate") if "backdate" in raw else BACKDATE,
    )


def _names(raw: object, where: str) -> tuple[Mapping[str, str], ...]:
    if not isinstance(raw, list):
        raise PkiError(f"{where}: must be a list of objects with C, ST, L, O, OU (got {raw!r})")
    names = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise PkiError(f"{at}: must be an object with C, ST, L, O, OU (got {entry!r})")
        _only(entry, NAME_ATTRIBUTES, at)
        values = {attr: _string(value, f"{at}.{attr}") for attr, value in entry.items() if value != ""}
        country = values.get("C")
        if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
            raise PkiError(f"{at}.C: must be a two-letter country code (got {country!r})")
        names.append(values)
    return tuple(names)


def classify_host(host: str, where: str) -> x509.GeneralName:
    """One `hosts` entry as the SAN it becomes: an IP, an email, a URI, or else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if "://" in host:
        return x509.UniformResourceIdentifier(host)
    if _EMAIL.fullmatch(host):
        return x509.RFC822Name(host)
    labels = host[2:].split(".") if host.startswith("*.") else host.split(".")
    if not host.isascii() or len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise PkiError(f"{where}: {host!r} is not a DNS name, IP address, email or URI")
    return x509.DNSName(host)


def _checked_hosts(raw: object, where: str) -> list[str]:
    if not isinstance(raw, list):
        raise PkiError(f"{where}: must be a list of DNS names and IP addresses (got {raw!r})")
    hosts: list[str] = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        host = _string(entry, at).strip()
        # cfssl's guides write `"hosts": [""]` for client certificates: an empty entry means no SAN.
        if not host or host in hosts:
            continue
        classify_host(host, at)
        hosts.append(host)
    return hosts


def parse_request(raw: object, source: str) -> CertificateRequest:
    """Validate a decoded CSR JSON; unknown fields and bad values are errors naming the field."""
    if not isinstance(raw, dict):
        raise PkiError(f"{source}: must be a JSON object")
    for key in raw:
        if key in _UNSUPPORTED_REQUEST_FIELDS:
            raise PkiError(f"{source}: {key}: cfssl field not supported by podgate")
    _only(raw, _REQUEST_FIELDS, source)
    return CertificateRequest(
        cn=_string(raw.get("CN", ""), f"{source}: CN"),
        names=_names(raw.get("names", []), f"{source}: names"),
        hosts=tuple(_checked_hosts(raw.get("hosts") or [], f"{source}: hosts")),
        key=_key(raw["key"], f"{source}: key") if "key" in raw else KeyRequest(),
        ca=_ca(raw["ca"], f"{source}: ca") if "ca" in raw else None,
        serial_number=_string(raw.get("serialnumber", ""), f"{source}: serialnumber"),
    )


def load_request(path: str | Path) -> CertificateRequest:
    return parse_request(read_json(path), str(path))


def subject_name(request: CertificateRequest) -> x509.Name:
    attributes = [
        x509.NameAttribute(oid, entry[attr])
        for attr, oid in NAME_ATTRIBUTES.items()
        for entry in request.names
        if attr in entry
    ]
    if request.cn:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, request.cn))
    if request.serial_number:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, request.serial_number))
    return x509.Name(attributes)


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    return [classify_host(host, "hosts") for host in hosts]


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """The digest cfssl pairs with a signing key: stronger keys get longer hashes."""
    bits = key.key_size
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA512() if bits >= 4096 else hashes.SHA384() if bits >= 3072 else hashes.SHA256()
    return hashes.SHA512() if bits >= 521 else hashes.SHA384() if bits >= 384 else hashes.SHA256()


def build_csr(request: CertificateRequest, key: PrivateKey) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_name(request))
    if request.hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(subject_alt_names(request.hosts)), False)
    if request.ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=request.ca.pathlen), True)
    return builder.sign(key, signature_hash(key))


def key_request_for(public_key: object) -> KeyRequest:
    """The key request that reproduces an existing key's algorithm and size (used to renew)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeyRequest("rsa", public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.key_size in EC_CURVES:
        return KeyRequest("ecdsa", public_key.key_size)
    raise PkiError(f"unsupported key type {type(public_key).__name__}: podgate issues RSA and ECDSA keys")


def request_from_certificate(cert: x509.Certificate) -> CertificateRequest:
    """The CSR JSON an existing certificate was issued from: subject, hosts and key type."""
    # Like cfssl's getNames: the i-th value of every attribute goes into the i-th `names` entry.
    columns = {attr: cert.subject.get_attributes_for_oid(oid) for attr, oid in NAME_ATTRIBUTES.items()}
    rows = max(len(values) for values in columns.values())
    names = tuple(
        {attr: str(values[i].value) for attr, values in columns.items() if i < len(values)}
        for i in range(rows)
    )
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    serial = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = tuple(str(name.value) for name in sans)
    except x509.ExtensionNotFound:
        hosts = ()
    return CertificateRequest(
        cn=str(cn[0].value) if cn else "",
        names=names,
        hosts=hosts,
        key=key_request_for(cert.public_key()),
        serial_number=str(serial[0].value) if serial else "",
    )
