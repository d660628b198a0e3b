"""`podgate certs`: cfssl-style CA and certificates: init-ca, gencert, info, check, renew, cabundle."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from webhook.errors import PkiError

if TYPE_CHECKING:
    from cryptography import x509

    from webhook.pki.csr import CertificateRequest, PrivateKey
    from webhook.pki.signer import Issued

# Used by `init-ca` without a CSR JSON: cfssl's defaults (ECDSA P-256, five years) with a plain name.
DEFAULT_CA_CN = "podgate CA"


def _hostnames(values: Sequence[str] | None) -> list[str]:
    """--hostname/--hosts take comma-separated lists and may repeat, like cfssl's -hostname."""
    return [h.strip() for value in values or () for h in value.split(",") if h.strip()]


def _output_name(csr_json: str) -> str:
    name = Path(csr_json).name
    for suffix in ("-csr.json", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _write_set(paths: tuple[Path, Path, Path], issued: Issued, *, overwrite: bool) -> None:
    """Write certificate, key and CSR; callers have already refused existing files unless `overwrite`."""
    from webhook.pki import files

    cert_path, key_path, csr_path = paths
    # Key first: a server hot-reloading on the certificate's change then finds the matching key already there.
    files.write_file(key_path, files.key_pem(issued.key), private=True, force=overwrite)
    files.write_file(csr_path, files.csr_pem(issued.csr), private=False, force=overwrite)
    files.write_file(cert_path, files.cert_pem(issued.cert), private=False, force=overwrite)
    print(f"wrote {cert_path}, {key_path} (0600), {csr_path}")


def _summary(cert: x509.Certificate) -> str:
    from webhook.pki.info import sans

    hosts = ", ".join(sans(cert)) or "no SANs"
    return (
        f"{cert.subject.rfc4514_string()} [{hosts}], valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
    )


def run_init_ca(args: argparse.Namespace) -> int:
    from webhook.pki import files
    from webhook.pki.csr import CAConfig, CertificateRequest, load_request
    from webhook.pki.signer import check_ca, init_ca

    out = Path(args.out_dir)
    paths = (out / "ca.pem", out / "ca-key.pem", out / "ca.csr")
    if args.keep_existing and paths[0].exists() and paths[1].exists():
        ca_cert, ca_key = files.load_certificate(paths[0]), files.load_private_key(paths[1])
        check_ca(ca_cert, ca_key)
        print(f"kept the existing CA {paths[0]}: {_summary(ca_cert)}")
        return 0
    request = (
        load_request(args.csr_json) if args.csr_json else CertificateRequest(cn=DEFAULT_CA_CN, ca=CAConfig())
    )
    files.refuse_existing(paths, args.force)
    issued = init_ca(request)
    _write_set(paths, issued, overwrite=args.force)
    print(f"CA: {_summary(issued.cert)}")
    return 0


def _load_ca(args: argparse.Namespace) -> tuple[x509.Certificate, PrivateKey]:
    from webhook.pki import files

    return files.load_certificate(args.ca), files.load_private_key(args.ca_key)


def run_gencert(args: argparse.Namespace) -> int:
    from webhook.pki.config import load_config
    from webhook.pki.csr import load_request
    from webhook.pki.files import refuse_existing
    from webhook.pki.signer import issue

    profile = load_config(args.config).profile(args.profile)
    request = load_request(args.csr_json)
    if args.hostname is not None:
        request = request.with_hosts(_hostnames(args.hostname))
    ca_cert, ca_key = _load_ca(args)
    out, name = Path(args.out_dir), args.name or _output_name(args.csr_json)
    paths = (out / f"{name}.pem", out / f"{name}-key.pem", out / f"{name}.csr")
    refuse_existing(paths, args.force)
    issued = issue(request, ca_cert, ca_key, profile)
    _write_set(paths, issued, overwrite=args.force)
    print(f"{profile.name}: {_summary(issued.cert)}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from webhook.pki.files import load_certificate
    from webhook.pki.info import describe, render

    info = describe(load_certificate(args.file))
    if args.output == "json":
        print(json.dumps(info, indent=2))
    else:
        print(render(info))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from webhook.pki.files import load_certificate
    from webhook.pki.info import check

    hosts = _hostnames(args.hosts)
    problems = check(load_certificate(args.cert), load_certificate(args.ca), hosts, args.days)
    for problem in problems:
        print(f"{args.cert}: {problem}", file=sys.stderr)
    if not problems:
        covered = f"covers {', '.join(hosts)}; " if hosts else ""
        print(f"{args.cert}: ok: chains to {args.ca}; {covered}not expiring within {args.days} days")
    return 1 if problems else 0


def _profile_of(cert: x509.Certificate) -> str:
    """The built-in profile an existing certificate was issued under, judged by its extended key usages."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return "server"
    server, client = ExtendedKeyUsageOID.SERVER_AUTH in usages, ExtendedKeyUsageOID.CLIENT_AUTH in usages
    return "peer" if server and client else "client" if client else "server"


def _key_problem(cert: x509.Certificate, key_path: Path) -> str | None:
    """Why the key next to `cert` cannot serve it (missing, unreadable, another key's), or None."""
    from webhook.pki.files import load_private_key

    if not key_path.exists():
        return f"its key {key_path} is missing"
    try:
        key = load_private_key(key_path)
    except PkiError as exc:
        return str(exc)
    if key.public_key() != cert.public_key():
        return f"{key_path} is not the key of this certificate"
    return None


def run_renew(args: argparse.Namespace) -> int:
    from webhook.pki import files
    from webhook.pki.config import load_config
    from webhook.pki.csr import load_request, request_from_certificate
    from webhook.pki.info import Renewal, needs_renewal
    from webhook.pki.signer import issue

    cert_path = Path(args.cert)
    stem = cert_path.name.removesuffix(".pem")
    key_path = Path(args.key) if args.key else cert_path.with_name(f"{stem}-key.pem")
    csr_path = cert_path.with_name(f"{stem}.csr")
    ca_cert, ca_key = _load_ca(args)
    hostnames = _hostnames(args.hostname) if args.hostname is not None else None
    request: CertificateRequest | None = load_request(args.csr) if args.csr else None
    if request is not None and hostnames is not None:
        request = request.with_hosts(hostnames)
    wanted_hosts = request.hosts if request is not None else hostnames or ()

    existing = files.load_certificate(cert_path) if cert_path.exists() else None
    if existing is None:
        if request is None:
            raise PkiError(f"{cert_path} does not exist: give --csr CSR_JSON to issue it")
        reason = f"{cert_path} does not exist"
        # A key without its certificate is not a renewal: that key is kept unless --force.
        replacing = False
    else:
        decision = needs_renewal(existing, ca=ca_cert, hosts=wanted_hosts, window=args.window)
        key_problem = _key_problem(existing, key_path)
        if key_problem:
            decision = Renewal(True, key_problem)
        if not decision.due and not args.force:
            print(f"{cert_path}: not renewed: {decision.reason}")
            return 0
        reason = "--force" if not decision.due else decision.reason
        if request is None:
            request = request_from_certificate(existing)
            if hostnames is not None:
                request = request.with_hosts(hostnames)
        replacing = True
    profile_name = args.profile or (_profile_of(existing) if existing is not None else "server")
    profile = load_config(args.config).profile(profile_name)
    paths = (cert_path, key_path, csr_path)
    files.refuse_existing(paths, replacing or args.force)
    issued = issue(request, ca_cert, ca_key, profile)
    _write_set(paths, issued, overwrite=replacing or args.force)
    print(f"{cert_path}: renewed ({reason}): {_summary(issued.cert)}")
    return 0


def run_cabundle(args: argparse.Namespace) -> int:
    from webhook.pki.info import cabundle

    try:
        data = Path(args.ca_pem).read_bytes()
    except OSError as exc:
        raise PkiError(f"{args.ca_pem}: cannot read: {exc.strerror}") from exc
    print(cabundle(data))
    return 0


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except PkiError as exc:
            print(f"podgate certs {args.certs_command}: error: {exc}", file=sys.stderr)
            return 1

    return guarded


def _ca_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca", required=True, metavar="CA_PEM", help="the CA certificate (ca.pem)")
    parser.add_argument(
        "--ca-key", required=True, metavar="CA_KEY_PEM", help="the CA private key (ca-key.pem)"
    )
    parser.add_argument(
        "--config", metavar="CA_CONFIG_JSON", help="cfssl ca-config.json with signing profiles"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = subparsers.add_parser(
        "certs", help="CA and TLS certificates (cfssl-compatible)", description=__doc__
    )
    commands = certs.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")

    init = commands.add_parser("init-ca", help="create a CA: ca.pem, ca-key.pem, ca.csr")
    init.add_argument("csr_json", nargs="?", metavar="CSR_JSON", help="cfssl CSR JSON for the CA")
    init.add_argument("--out-dir", default=".", metavar="DIR", help="where to write (default: .)")
    init.add_argument(
        "--force", action="store_true", help="replace an existing CA (invalidates its certificates)"
    )
    init.add_argument(
        "--keep-existing",
        action="store_true",
        help="exit 0 keeping ca.pem/ca-key.pem if they exist and match",
    )
    init.set_defaults(run=_guarded(run_init_ca))

    gen = commands.add_parser("gencert", help="issue a certificate from a CSR JSON under a profile")
    gen.add_argument("csr_json", metavar="CSR_JSON", help="cfssl CSR JSON (CN, hosts, key, names)")
    _ca_options(gen)
    gen.add_argument(
        "--profile", required=True, help="signing profile: server, client, peer or one in --config"
    )
    gen.add_argument(
        "--hostname", action="append", metavar="HOSTS", help="comma-separated SANs replacing hosts"
    )
    gen.add_argument("--out-dir", default=".", metavar="DIR", help="where to write (default: .)")
    gen.add_argument("--name", help="output base name (default: CSR file name minus -csr.json)")
    gen.add_argument("--force", action="store_true", help="replace existing files")
    gen.set_defaults(run=_guarded(run_gencert))

    info = commands.add_parser("info", help="show a certificate, like cfssl-certinfo")
    info.add_argument("file", metavar="FILE", help="a PEM certificate")
    info.add_argument("-o", "--output", choices=("text", "json"), default="text")
    info.set_defaults(run=_guarded(run_info))

    chk = commands.add_parser("check", help="verify chain, SANs and remaining validity; non-zero if unfit")
    chk.add_argument("--ca", required=True, metavar="CA_PEM")
    chk.add_argument("--cert", required=True, metavar="CERT_PEM")
    chk.add_argument(
        "--hosts", action="append", metavar="HOSTS", help="comma-separated names the SANs must cover"
    )
    chk.add_argument("--days", type=int, default=0, metavar="N", help="fail if it expires within N days")
    chk.set_defaults(run=_guarded(run_check))

    renew = commands.add_parser(
        "renew", help="re-issue a certificate in its renewal window (new key, same CA)"
    )
    _ca_options(renew)
    renew.add_argument("--cert", required=True, metavar="CERT_PEM", help="the certificate to renew")
    renew.add_argument("--key", metavar="KEY_PEM", help="its key (default: <cert name>-key.pem)")
    renew.add_argument(
        "--csr", metavar="CSR_JSON", help="issue from this CSR JSON (required if CERT_PEM is missing)"
    )
    renew.add_argument("--hostname", action="append", metavar="HOSTS", help="comma-separated SANs to require")
    renew.add_argument("--profile", help="signing profile (default: inferred from the certificate's usages)")
    renew.add_argument(
        "--window", type=float, default=1 / 3, metavar="FRACTION", help="renew in this last part of its life"
    )
    renew.add_argument("--force", action="store_true", help="renew now, even outside the window")
    renew.set_defaults(run=_guarded(run_renew))

    bundle = commands.add_parser("cabundle", help="print the base64 caBundle of a CA certificate")
    bundle.add_argument("ca_pem", metavar="CA_PEM")
    bundle.set_defaults(run=_guarded(run_cabundle))
