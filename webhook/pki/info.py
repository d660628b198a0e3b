"""Reading certificates back: cfssl-certinfo's summary, chain/SAN/expiry checks, renewal, caBundle."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from webhook.errors import PkiError
from webhook.pki.config import EXT_KEY_USAGES, KEY_USAGES
from webhook.pki.files import cert_pem

DEFAULT_WINDOW = 1 / 3  # renew in the last third of a certificate's life, as cert-manager does
DAY = timedelta(days=1)

# Display names: cfssl's aliases ("signing", "s/mime", its misspelt "content committment") give way.
_KEY_USAGE_NAMES = {
    kw: name for name, kw in KEY_USAGES.items() if name not in ("signing", "content committment")
}
_EXT_KEY_USAGE_NAMES = {oid: name for name, oid in EXT_KEY_USAGES.items() if name != "s/mime"}
_SUBJECT_FIELDS = {
    "common_name": NameOID.COMMON_NAME,
    "country": NameOID.COUNTRY_NAME,
    "province": NameOID.STATE_OR_PROVINCE_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizational_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
}


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def _name(name: x509.Name) -> dict[str, Any]:
    # cfssl-certinfo's shape: one key per attribute, plus the RFC 4514 form for humans.
    out: dict[str, Any] = {"rfc4514": name.rfc4514_string()}
    for key, oid in _SUBJECT_FIELDS.items():
        values = [str(a.value) for a in name.get_attributes_for_oid(oid)]
        if values:
            out[key] = values[0] if key == "common_name" else values
    return out


def sans(cert: x509.Certificate) -> list[str]:
    names = _extension(cert, x509.SubjectAlternativeName)
    return [str(n.value) for n in names] if names is not None else []


def key_description(cert: x509.Certificate) -> tuple[str, int]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}", key.key_size
    return type(key).__name__, 0


def signature_algorithm(cert: x509.Certificate) -> str:
    """The signature algorithm in Go's spelling, which cfssl-certinfo prints (ECDSAWithSHA256, ...)."""
    digest = cert.signature_hash_algorithm
    if digest is None:
        return cert.signature_algorithm_oid.dotted_string
    oid = cert.signature_algorithm_oid
    if oid.dotted_string.startswith("1.2.840.10045."):
        return f"ECDSAWith{digest.name.upper()}"
    pss = oid == SignatureAlgorithmOID.RSASSA_PSS
    return f"{digest.name.upper()}WithRSA{'PSS' if pss else ''}"


def is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return bool(constraints is not None and constraints.ca)


def describe(cert: x509.Certificate, now: datetime | None = None) -> dict[str, Any]:
    """Everything `podgate certs info` shows, JSON-ready; keys shared with cfssl-certinfo keep its names."""
    moment = now or datetime.now(UTC)
    usage = _extension(cert, x509.KeyUsage)
    key_usages: list[str] = []
    if usage is not None:
        for keyword, name in _KEY_USAGE_NAMES.items():
            # encipher_only/decipher_only raise unless key_agreement is set.
            if (keyword not in ("encipher_only", "decipher_only") or usage.key_agreement) and getattr(
                usage, keyword
            ):
                key_usages.append(name)
    ext_usage = _extension(cert, x509.ExtendedKeyUsage)
    constraints = _extension(cert, x509.BasicConstraints)
    ski = _extension(cert, x509.SubjectKeyIdentifier)
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    algo, bits = key_description(cert)
    return {
        "subject": _name(cert.subject),
        "issuer": _name(cert.issuer),
        "serial_number": str(cert.serial_number),
        "sans": sans(cert),
        "not_before": f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
        "not_after": f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
        "days_left": (cert.not_valid_after_utc - moment) // DAY,
        "key": {"algo": algo, "size": bits},
        "sigalg": signature_algorithm(cert),
        "is_ca": bool(constraints is not None and constraints.ca),
        "path_len": constraints.path_length if constraints is not None and constraints.ca else None,
        "key_usages": key_usages,
        "ext_key_usages": [_EXT_KEY_USAGE_NAMES.get(oid, oid.dotted_string) for oid in ext_usage or ()],
        "subject_key_id": _colon_hex(ski.digest) if ski is not None else "",
        "authority_key_id": _colon_hex(aki.key_identifier) if aki is not None and aki.key_identifier else "",
        "sha256_fingerprint": _colon_hex(cert.fingerprint(hashes.SHA256())),
        "pem": cert_pem(cert).decode("ascii"),
    }


def render(info: dict[str, Any]) -> str:
    """The human form of `describe()`: one aligned line per field, lists comma-separated."""
    rows = [
        ("subject", info["subject"]["rfc4514"]),
        ("issuer", info["issuer"]["rfc4514"]),
        ("SANs", ", ".join(info["sans"]) or "(none)"),
        ("not before", info["not_before"]),
        ("not after", info["not_after"]),
        ("days left", str(info["days_left"])),
        ("key", f"{info['key']['algo']} ({info['key']['size']} bits)"),
        ("CA", f"yes, pathlen {info['path_len']}" if info["is_ca"] else "no"),
        ("key usages", ", ".join(info["key_usages"]) or "(none)"),
        ("ext key usages", ", ".join(info["ext_key_usages"]) or "(none)"),
        ("serial", info["serial_number"]),
        ("signature", info["sigalg"]),
        ("subject key id", info["subject_key_id"] or "(none)"),
        ("authority key id", info["authority_key_id"] or "(none)"),
        ("SHA-256", info["sha256_fingerprint"]),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in rows)


def covers(cert: x509.Certificate, host: str) -> bool:
    """Whether a SAN of `cert` matches `host`, with the one-label wildcard rule TLS clients apply."""
    names = _extension(cert, x509.SubjectAlternativeName)
    if names is None:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in names.get_values_for_type(x509.IPAddress)
    wanted = host.lower().rstrip(".")
    for dns in names.get_values_for_type(x509.DNSName):
        pattern = dns.lower().rstrip(".")
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> str | None:
    """None when `ca` signed `cert`, else why not."""
    try:
        cert.verify_directly_issued_by(ca)
    except ValueError:
        return f"issued by {cert.issuer.rfc4514_string()}, not by {ca.subject.rfc4514_string()}"
    except InvalidSignature:
        return f"signature does not verify against the CA {ca.subject.rfc4514_string()}"
    except TypeError as exc:
        return f"cannot verify the signature: {exc}"
    return None


def _verify_as_server(cert: x509.Certificate, ca: x509.Certificate, host: str, now: datetime) -> str | None:
    # The RFC 5280 path validation a TLS client does (EKU, key usage, constraints), on top of our own checks.
    try:
        subject: verification.Subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    store = verification.Store([ca])
    verifier = verification.PolicyBuilder().store(store).time(now).build_server_verifier(subject)
    try:
        verifier.verify(cert, [])
    except verification.VerificationError as exc:
        return f"path validation for {host} failed: {exc}"
    return None


def check(
    cert: x509.Certificate,
    ca: x509.Certificate,
    hosts: Sequence[str] = (),
    days: int = 0,
    now: datetime | None = None,
) -> list[str]:
    """Every reason `cert` is not fit to serve `hosts` under `ca` for `days` more days; empty when it is."""
    moment = now or datetime.now(UTC)
    problems: list[str] = []
    if not is_ca(ca):
        problems.append(f"{ca.subject.rfc4514_string()} is not a CA certificate")
    signature = issued_by(cert, ca)
    if signature:
        problems.append(signature)
    for what, c in (("CA", ca), ("certificate", cert)):
        if c.not_valid_after_utc <= moment:
            problems.append(f"the {what} expired on {c.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z")
        elif c.not_valid_before_utc > moment:
            problems.append(f"the {what} is not valid before {c.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z")
    uncovered = [h for h in hosts if not covers(cert, h)]
    if uncovered:
        listed = ", ".join(sans(cert)) or "none"
        problems.append(f"SANs do not cover {', '.join(uncovered)} (SANs: {listed})")
    left = cert.not_valid_after_utc - moment
    if days and timedelta(0) < left < days * DAY:
        problems.append(f"expires in {left // DAY} days, within the required {days}")
    ext_usage = _extension(cert, x509.ExtendedKeyUsage)
    if hosts and ext_usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in ext_usage:
        problems.append("not usable as a TLS server certificate (no 'server auth' extended key usage)")
    if not problems:
        problems.extend(p for h in hosts if (p := _verify_as_server(cert, ca, h, moment)) is not None)
    return problems


@dataclass(frozen=True)
class Renewal:
    """Whether a certificate should be re-issued, and the reason either way (for logs and humans)."""

    due: bool
    reason: str


def renewal_time(cert: x509.Certificate, window: float = DEFAULT_WINDOW) -> datetime:
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - life * window


def needs_renewal(
    cert: x509.Certificate,
    *,
    ca: x509.Certificate | None = None,
    hosts: Sequence[str] = (),
    window: float = DEFAULT_WINDOW,
    now: datetime | None = None,
) -> Renewal:
    """Decide whether to re-issue `cert`: wrong CA, missing hosts, expired, or inside the renewal window."""
    if not 0 < window <= 1:
        raise PkiError(f"the renewal window must be a fraction in (0, 1] (got {window})")
    moment = now or datetime.now(UTC)
    if ca is not None and (why := issued_by(cert, ca)):
        return Renewal(True, f"not from the current CA: {why}")
    uncovered = [h for h in hosts if not covers(cert, h)]
    if uncovered:
        return Renewal(True, f"SANs do not cover {', '.join(uncovered)}")
    expiry = cert.not_valid_after_utc
    if expiry <= moment:
        return Renewal(True, f"expired on {expiry:%Y-%m-%d %H:%M:%S}Z")
    renew_at = renewal_time(cert, window)
    left = (expiry - moment) // DAY
    life = (expiry - cert.not_valid_before_utc) // DAY
    if moment >= renew_at:
        return Renewal(
            True,
            f"in its renewal window since {renew_at:%Y-%m-%d %H:%M}Z ({left} of {life} days left, "
            f"renewing in the last {window:.0%})",
        )
    return Renewal(
        False, f"valid until {expiry:%Y-%m-%d}, {left} days left; renewal due from {renew_at:%Y-%m-%d}"
    )


def cabundle(ca_pem: bytes) -> str:
    """The caBundle of a webhook configuration: the CA certificate's PEM, base64-encoded."""
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise PkiError("not a PEM certificate: a caBundle must hold the CA certificate") from None
    not_ca = [c.subject.rfc4514_string() for c in certs if not is_ca(c)]
    if not_ca:
        raise PkiError(f"{', '.join(not_ca)} is not a CA certificate; the caBundle must hold the issuing CA")
    return base64.b64encode(ca_pem).decode("ascii")
