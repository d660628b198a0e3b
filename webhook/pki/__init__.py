"""cfssl-equivalent PKI on `cryptography`: CSR JSON -> key + CSR -> sign(csr, CA, profile) -> PEM files."""

from webhook.pki.config import SigningConfig, SigningProfile, load_config, parse_config
from webhook.pki.csr import CertificateRequest, KeyRequest, load_request, parse_request
from webhook.pki.info import Renewal, cabundle, check, describe, needs_renewal
from webhook.pki.signer import Issued, init_ca, issue, sign

__all__ = [
    "CertificateRequest",
    "Issued",
    "KeyRequest",
    "Renewal",
    "SigningConfig",
    "SigningProfile",
    "cabundle",
    "check",
    "describe",
    "init_ca",
    "issue",
    "load_config",
    "load_request",
    "needs_renewal",
    "parse_config",
    "parse_request",
    "sign",
]
