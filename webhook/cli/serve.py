"""`podgate serve`: the admission webhook over HTTPS under gunicorn, reloading policies and certificate."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from webhook.cli.common import add_policies_flag, policies_path
from webhook.errors import PodgateError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve /mutate and /validate over HTTPS",
        description=__doc__,
        epilog="Every option can also be set by its PODGATE_* variable (--fail-mode: PODGATE_FAIL_MODE); "
        "a flag wins over its variable. See docs/server.md.",
    )
    add_policies_flag(parser)
    parser.add_argument("--cert", metavar="FILE", help="server certificate chain, PEM ($PODGATE_CERT)")
    parser.add_argument("--key", metavar="FILE", help="its private key, PEM ($PODGATE_KEY)")
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="address to listen on (default 0.0.0.0:8443 in a pod, else 127.0.0.1:8443)",
    )
    parser.add_argument("--workers", metavar="N", help="worker processes (default: one per usable CPU)")
    parser.add_argument("--threads", metavar="N", help="request threads per worker (default 4)")
    parser.add_argument(
        "--fail-mode", metavar="MODE", help="when evaluation fails: admit (with a warning, default) or deny"
    )
    parser.add_argument("--max-body-bytes", metavar="SIZE", help="largest accepted body, e.g. 8Mi (default)")
    parser.add_argument(
        "--reload-interval", metavar="SECONDS", help="how often to look for changes (default 2)"
    )
    parser.add_argument(
        "--keepalive", metavar="SECONDS", help="idle time before closing a connection (default 120)"
    )
    parser.add_argument(
        "--graceful-timeout",
        metavar="SECONDS",
        help="on SIGTERM, time to finish in-flight requests (default 25)",
    )
    parser.add_argument(
        "--read-timeout",
        metavar="SECONDS",
        help="time a client has to send one whole request, TLS handshake included (default 10)",
    )
    parser.add_argument(
        "--client-ca",
        metavar="FILE",
        help="CA bundle, PEM: require a client certificate from it for everything but /healthz and /readyz",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        default=None,
        help="serve even with no policies (an empty directory or file), which admits everything "
        "unchanged; without it, that is an error and the last good set stays ($PODGATE_ALLOW_EMPTY)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="read namespace labels and LimitRanges from this cluster (default: the pod's service account "
        "if mounted; $KUBECONFIG or ~/.kube/config when a policy needs namespace labels); docs/cluster.md",
    )
    parser.add_argument("--context", metavar="NAME", help="the kubeconfig context (default: its current one)")
    parser.add_argument(
        "--metrics-dir",
        metavar="DIR",
        help="Prometheus multiprocess directory, emptied at start (default: a temp dir)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from webhook.errors import SettingsError
    from webhook.server import logs
    from webhook.server.settings import load_settings

    flags = {key: value for key, value in vars(args).items() if key not in ("command", "run")}
    flags["policies"] = str(policies_path(args.policies))
    try:
        settings = load_settings(flags, os.environ)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if settings.cert is None or settings.key is None:
        print("error: --cert and --key (or PODGATE_CERT and PODGATE_KEY) are required", file=sys.stderr)
        return 2
    logs.configure()
    prepare_metrics_dir(settings.metrics_dir)

    # Imported only now: prometheus_client chooses its multiprocess storage when first imported.
    from webhook.server.cluster import ClusterGate
    from webhook.server.serving import WebhookServer, open_sources

    gate = ClusterGate(settings.kubeconfig, settings.context)
    try:
        policies, certificates = open_sources(settings, gate.check)
    except PodgateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not policies.healthy() or not certificates.healthy():
        print(
            "error: not serving: the policies or the TLS certificate did not load (see above)",
            file=sys.stderr,
        )
        return 1
    try:
        cluster = gate.decide(policies.current())
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    WebhookServer(settings, policies, certificates, cluster=cluster).run()
    return 0


def prepare_metrics_dir(chosen: Path | None) -> Path:
    """Point prometheus_client at an empty directory: the chosen one, PROMETHEUS_MULTIPROC_DIR, or a temp dir.

    Files left by an earlier run would add its counts to this one's. This must run before anything
    imports prometheus_client, which is why it does not use webhook.server.metrics.
    """
    if chosen is None and os.environ.get(MULTIPROC_ENV):
        chosen = Path(os.environ[MULTIPROC_ENV])
    if chosen is None:
        chosen = Path(tempfile.mkdtemp(prefix="podgate-metrics-"))
        atexit.register(remove_in_master, chosen, os.getpid())
    elif chosen.exists():
        for entry in chosen.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    chosen.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(chosen)
    return chosen


def remove_in_master(path: Path, master: int) -> None:
    # Workers are forked from the master and run its atexit handlers too: only the master cleans up.
    if os.getpid() == master:
        shutil.rmtree(path, ignore_errors=True)
