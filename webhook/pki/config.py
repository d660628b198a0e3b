"""cfssl's ca-config.json: signing profiles, their usages as a data table, and Go-style durations."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from webhook.errors import PkiError

# cfssl's defaults: a CA lives five years, a leaf one, and both are backdated for clock skew.
CA_EXPIRY = timedelta(hours=43800)
LEAF_EXPIRY = timedelta(hours=8760)
BACKDATE = timedelta(minutes=5)

# Key usage names as cfssl spells them (config/config.go), mapped to cryptography's KeyUsage keywords.
# "content committment" is cfssl's own spelling; the correct one is accepted too.
KEY_USAGES: Mapping[str, str] = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "content committment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}

EXT_KEY_USAGES: Mapping[str, ObjectIdentifier] = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
}

# A leaf is never a CA here (gencert issues end-entity certificates), so these cannot appear in a profile.
CA_ONLY_USAGES = frozenset({"cert sign", "crl sign"})

# cfssl profile and top-level fields that podgate reads without honouring them would silently change
# what gets issued, so they are refused by name rather than ignored.
_UNSUPPORTED_PROFILE_FIELDS = frozenset(
    {
        "issuer_urls",
        "ocsp_url",
        "crl_url",
        "is_ca",
        "ca_constraint",
        "policies",
        "ocsp_no_check",
        "auth_key",
        "remote",
        "name_whitelist",
        "not_before",
        "not_after",
        "ct_log_servers",
        "allowed_extensions",
        "lint_errlevel",
        "ignored_lints",
        "auth_remote",
    }
)
_PROFILE_FIELDS = frozenset({"usages", "expiry", "backdate"})
_TOP_FIELDS = frozenset({"signing"})
_UNSUPPORTED_TOP_FIELDS = frozenset({"auth_keys", "remotes"})

_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: object, where: str) -> timedelta:
    """Parse a positive Go duration ("8760h", "1h30m", "90m") the way cfssl's time.ParseDuration does."""
    if not isinstance(text, str) or not text:
        raise PkiError(f'{where}: must be a duration like "8760h" (got {text!r})')
    rest, seconds = text, 0.0
    while rest:
        part = _GO_PART.match(rest)
        if part is None:
            raise PkiError(
                f'{where}: must be a duration like "8760h" (units ns, us, ms, s, m, h; got {text!r})'
            )
        seconds += float(part.group(1)) * _GO_UNITS[part.group(2)]
        rest = rest[part.end() :]
    if seconds <= 0:
        raise PkiError(f"{where}: must be longer than zero (got {text!r})")
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """Render a duration in cfssl's vocabulary: whole hours when exact ("8760h"), else hours and minutes."""
    minutes = int(span.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h" if not minutes else f"{hours}h{minutes}m"


@dataclass(frozen=True)
class SigningProfile:
    """What a certificate issued under one profile may do and how long it lives."""

    name: str
    usages: tuple[str, ...]
    expiry: timedelta = LEAF_EXPIRY
    backdate: timedelta = BACKDATE

    @property
    def key_usages(self) -> frozenset[str]:
        """cryptography KeyUsage keywords (digital_signature, ...) named by this profile."""
        return frozenset(KEY_USAGES[u] for u in self.usages if u in KEY_USAGES)

    @property
    def ext_key_usages(self) -> tuple[ObjectIdentifier, ...]:
        seen: dict[ObjectIdentifier, None] = {}
        for usage in self.usages:
            if usage in EXT_KEY_USAGES:
                seen[EXT_KEY_USAGES[usage]] = None
        return tuple(seen)


@dataclass(frozen=True)
class SigningConfig:
    """ca-config.json's `signing` section: a default profile and the named ones."""

    default: SigningProfile
    profiles: Mapping[str, SigningProfile] = field(default_factory=dict)
    source: str = "built-in profiles"

    def profile(self, name: str) -> SigningProfile:
        # cfssl falls back to the default profile for an unknown name; that issues a certificate with
        # usages nobody asked for, so an unknown name is an error here.
        if name in self.profiles:
            return self.profiles[name]
        if name == "default":
            return self.default
        known = ", ".join(sorted(self.profiles)) or "none"
        raise PkiError(f"{self.source}: no signing profile {name!r} (profiles: {known})")


# The profiles podgate issues without a ca-config.json: cfssl's usual server/client/peer trio. The
# "key encipherment" usage is dropped for EC keys when a certificate is signed (see signer.py).
_BASE_USAGES = ("signing", "key encipherment")
BUILTIN = SigningConfig(
    default=SigningProfile("default", (*_BASE_USAGES, "server auth", "client auth")),
    profiles={
        "server": SigningProfile("server", (*_BASE_USAGES, "server auth")),
        "client": SigningProfile("client", (*_BASE_USAGES, "client auth")),
        "peer": SigningProfile("peer", (*_BASE_USAGES, "server auth", "client auth")),
    },
)


def _check_fields(
    raw: Mapping[str, Any], allowed: frozenset[str], refused: frozenset[str], where: str
) -> None:
    for key in raw:
        if key in refused:
            raise PkiError(f"{where}.{key}: cfssl field not supported by podgate")
        if key not in allowed:
            raise PkiError(f"{where}: unknown field {key!r} (allowed: {', '.join(sorted(allowed))})")


def _usages(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(u, str) for u in raw):
        raise PkiError(f"{where}: must be a non-empty list of usage names (got {raw!r})")
    for usage in raw:
        if usage not in KEY_USAGES and usage not in EXT_KEY_USAGES:
            raise PkiError(f"{where}: unknown usage {usage!r}")
        if usage in CA_ONLY_USAGES:
            raise PkiError(f"{where}: usage {usage!r} is for CA certificates; profiles issue leaves only")
    if any(u in raw for u in ("encipher only", "decipher only")) and "key agreement" not in raw:
        raise PkiError(f'{where}: "encipher only" and "decipher only" need "key agreement"')
    return tuple(raw)


def _profile(name: str, raw: object, where: str, default: SigningProfile | None) -> SigningProfile:
    if not isinstance(raw, dict):
        raise PkiError(f"{where}: must be an object (got {raw!r})")
    _check_fields(raw, _PROFILE_FIELDS, _UNSUPPORTED_PROFILE_FIELDS, where)
    fallback = default or BUILTIN.default
    if "usages" in raw:
        usages = _usages(raw["usages"], f"{where}.usages")
    elif default is None:
        usages = fallback.usages
    else:
        raise PkiError(f"{where}: missing field 'usages'")
    # cfssl requires an expiry in every profile; inheriting the default's is a strict superset.
    expiry = parse_duration(raw["expiry"], f"{where}.expiry") if "expiry" in raw else fallback.expiry
    backdate = (
        parse_duration(raw["backdate"], f"{where}.backdate") if "backdate" in raw else fallback.backdate
    )
    return SigningProfile(name, usages, expiry, backdate)


def parse_config(raw: object, source: str) -> SigningConfig:
    """Validate a decoded ca-config.json; every field is checked, none ignored."""
    if not isinstance(raw, dict):
        raise PkiError(f"{source}: must be a JSON object")
    _check_fields(raw, _TOP_FIELDS, _UNSUPPORTED_TOP_FIELDS, source)
    signing = raw.get("signing")
    if not isinstance(signing, dict):
        raise PkiError(f"{source}: missing object 'signing'")
    _check_fields(signing, frozenset({"default", "profiles"}), frozenset(), f"{source}: signing")
    default = BUILTIN.default
    if "default" in signing:
        default = _profile("default", signing["default"], f"{source}: signing.default", None)
    profiles_raw = signing.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise PkiError(f"{source}: signing.profiles: must be an object of named profiles")
    profiles = {
        name: _profile(name, body, f"{source}: signing.profiles.{name}", default)
        for name, body in profiles_raw.items()
    }
    return SigningConfig(default, profiles, source)


def load_config(path: str | Path | None) -> SigningConfig:
    """Read ca-config.json, or return the built-in server/client/peer profiles when there is none."""
    if path is None:
        return BUILTIN
    return parse_config(read_json(path), str(path))


def read_json(path: str | Path) -> Any:
    """A cfssl JSON file; errors name the file (and line), as cfssl users expect."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PkiError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise PkiError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
