"""cfssl's signing pipeline: a self-signed CA from a CSR JSON, and leaves signed under a profile."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.errors import PkiError
from webhook.pki.config import SigningProfile
from webhook.pki.csr import (
    CAConfig,
    CertificateRequest,
    PrivateKey,
    PublicKey,
    build_csr,
    signature_hash,
)

SERIAL_BITS = 128


@dataclass(frozen=True)
class Issued:
    """A freshly issued certificate with the key and the request it came from."""

    cert: x509.Certificate
    key: PrivateKey
    csr: x509.CertificateSigningRequest


def new_serial() -> int:
    """A random 128-bit serial: unpredictable (RFC 5280 asks for 20 octets at most) and never zero."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:
            return serial


def _now(now: datetime | None) -> datetime:
    # X.509 times have whole seconds; dropping the fraction keeps a re-read certificate equal to its template.
    return (now or datetime.now(UTC)).replace(microsecond=0)


def _public_key(subject: x509.CertificateSigningRequest | x509.Certificate) -> PublicKey:
    key = subject.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise PkiError(f"unsupported public key type {type(key).__name__} (RSA or ECDSA only)")
    return key


def init_ca(request: CertificateRequest, now: datetime | None = None) -> Issued:
    """Generate a CA key and its self-signed certificate, as `cfssl gencert -initca` does."""
    ca = request.ca or CAConfig()
    key = request.key.generate()
    csr = build_csr(request, key)
    start = _now(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(csr.subject)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(start - ca.backdate)
        .not_valid_after(start + ca.expiry)
        .add_extension(x509.BasicConstraints(ca=True, path_length=ca.pathlen), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if request.hosts:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(sans, critical=False)
    return Issued(builder.sign(key, signature_hash(key)), key, csr)


def check_ca(ca_cert: x509.Certificate, ca_key: PrivateKey, now: datetime | None = None) -> None:
    """Refuse to sign with a pair that cannot produce a verifiable certificate."""
    if ca_cert.public_key() != ca_key.public_key():
        raise PkiError("the CA key does not belong to the CA certificate")
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PkiError(f"{ca_cert.subject.rfc4514_string()} is not a CA certificate (no CA:TRUE)")
    moment = _now(now)
    if ca_cert.not_valid_after_utc <= moment:
        raise PkiError(f"the CA expired on {ca_cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z")
    if ca_cert.not_valid_before_utc > moment:
        raise PkiError(f"the CA is not valid before {ca_cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z")


def _key_usage(profile: SigningProfile, key: PublicKey) -> x509.KeyUsage:
    wanted = set(profile.key_usages)
    if isinstance(key, ec.EllipticCurvePublicKey):
        # RFC 5480 section 3: an EC key cannot encipher keys or data, so cfssl's stock
        # "key encipherment" is only meaningful, and only kept, for RSA.
        wanted -= {"key_encipherment", "data_encipherment"}
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: name in wanted for name in names})


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_public_key(ca_cert))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def validity(
    profile: SigningProfile, ca_cert: x509.Certificate, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The leaf's notBefore/notAfter: backdated for clock skew, and never past the CA's own notAfter."""
    start = _now(now)
    not_before = max(start - profile.backdate, ca_cert.not_valid_before_utc)
    not_after = min(start + profile.expiry, ca_cert.not_valid_after_utc)
    return not_before, not_after


def sign(
    csr: x509.CertificateSigningRequest,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    profile: SigningProfile,
    now: datetime | None = None,
) -> x509.Certificate:
    """Sign a leaf certificate for `csr` under `profile`; subject and SANs come from the request."""
    if not csr.is_signature_valid:
        raise PkiError("the certificate request's signature does not verify")
    check_ca(ca_cert, ca_key, now)
    public_key = _public_key(csr)
    not_before, not_after = validity(profile, ca_cert, now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(profile, public_key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if profile.ext_key_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.ext_key_usages)), critical=False)
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if sans is not None:
        # RFC 5280 4.2.1.6: with an empty subject the SANs are the only identity and must be critical.
        builder = builder.add_extension(sans, critical=len(csr.subject) == 0)
    return builder.sign(ca_key, signature_hash(ca_key))


def issue(
    request: CertificateRequest,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    profile: SigningProfile,
    now: datetime | None = None,
) -> Issued:
    """Generate a key and CSR from `request` and sign it, as `cfssl gencert -ca ... -profile` does."""
    check_ca(ca_cert, ca_key, now)
    key = request.key.generate()
    csr = build_csr(request, key)
    return Issued(sign(csr, ca_cert, ca_key, profile, now), key, csr)
