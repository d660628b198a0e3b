"""gunicorn, configured for an admission webhook: TLS with rotation, kept-alive connections, graceful stop.

The master builds the app once (preload): the policy set and certificate are loaded and checked
before any worker starts, and a worker forked later (after a crash) starts from a good set even if
the directory is broken by then. Each worker then polls for changes on its own thread.
"""

from __future__ import annotations

import logging
import select
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from webhook.kube import jsoncodec
from webhook.policy.loader import load_policies
from webhook.policy.model import PolicySet
from webhook.server.app import create_app
from webhook.server.cluster import ClusterCache
from webhook.server.logs import LOGGER, GunicornLogger, fields, gunicorn_logconfig
from webhook.server.metrics import Metrics, mark_worker_dead
from webhook.server.reload import CertificateSource, PolicySource, Poller, ReloadOutcome, log_outcome
from webhook.server.settings import Settings
from webhook.server.tls import verified_client

log = logging.getLogger(f"{LOGGER}.serving")

# gthread's request handling, with no thread waiting for a silent connection (webhook/server/worker.py):
# kept-alive and freshly dialled connections wait in epoll, not in a thread, and TLS handshakes are done
# once per connection (benchmarks/README.md has the comparison with sync). It needs Linux's epoll;
# elsewhere (a laptop) gunicorn's own gthread, whose threads such connections can hold.
WORKER_CLASS = "webhook.server.worker.PodgateWorker" if hasattr(select, "epoll") else "gthread"
# gunicorn kills a worker whose main loop is silent this long; evaluation is milliseconds.
WORKER_TIMEOUT = 30
# An AdmissionReview's headers are few; the apiserver's audit-id etc. fit well within this.
MAX_HEADER_BYTES = 16 * 1024
# With --client-ca, what a connection without a client certificate may still ask: kubelet probes
# cannot present one. Everything else (reviews, and /metrics, which names policies and rules) needs one.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WebhookServer(BaseApplication):  # type: ignore[misc]
    """`podgate serve`: a gunicorn application whose WSGI app is built from already-loaded sources."""

    def __init__(
        self,
        settings: Settings,
        policies: PolicySource,
        certificates: CertificateSource,
        *,
        cluster: ClusterCache | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.certificates = certificates
        self.cluster = cluster
        self.metrics = Metrics()
        self.application: Flask = create_app(
            policies, settings, metrics=self.metrics, certificates=certificates, cluster=cluster
        )
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [s.bind],
            "workers": s.workers,
            "worker_class": WORKER_CLASS,
            "threads": s.threads,
            "keepalive": s.keepalive,
            "timeout": WORKER_TIMEOUT,
            "graceful_timeout": s.graceful_timeout,
            "preload_app": True,
            "limit_request_field_size": MAX_HEADER_BYTES,
            # gunicorn needs these set to know it serves TLS; the context itself comes from ssl_context.
            "certfile": str(s.cert),
            "keyfile": str(s.key),
            "ssl_context": self.ssl_context,
            "logconfig_dict": gunicorn_logconfig(),
            "logger_class": GunicornLogger,
            "accesslog": None,
            "proc_name": "podgate",
            "post_worker_init": self.post_worker_init,
            "child_exit": self.child_exit,
            "when_ready": self.when_ready,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        if self.settings.client_ca is not None:
            return ClientCertificateGate(self.application)
        return self.application

    def ssl_context(self, config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        # Called for every accepted connection: return whichever context holds the current certificate.
        return self.certificates.context()

    def post_worker_init(self, worker: Any) -> None:
        """In each worker: count reloads, report the served set, then poll on a background thread."""
        self.policies.subscribe(self.metrics.policy_reload)
        self.certificates.subscribe(self._count_certificate_reload)
        # The set inherited from the master, loaded before the fork: the master itself records no
        # value (its gauges would outlive every worker in multiprocess mode).
        current = self.policies.current()
        if current is not None:
            self.metrics.policies_loaded(current.digest, None, self.policies.loaded_at or 0.0)
        Poller([self.policies, self.certificates], self.settings.reload_interval).start()
        if self.cluster is not None:
            # Per worker: the watch threads of the master would not survive the fork.
            self.cluster.start()

    def child_exit(self, server: Any, worker: Any) -> None:
        mark_worker_dead(worker.pid)

    def when_ready(self, server: Any) -> None:
        policies = self.policies.current()
        log.info(
            "ready",
            extra=fields(
                url=f"https://{self.settings.bind}",
                workers=self.settings.workers,
                threads=self.settings.threads,
                policySet=policies.digest if policies else None,
                policies=list(policies.names) if policies else [],
                failMode=self.settings.fail_mode,
                readTimeout=self.settings.read_timeout,
                clientCertificates=self.settings.client_ca is not None,
                clusterFacts=self.cluster is not None,
            ),
        )

    def _count_certificate_reload(self, outcome: ReloadOutcome) -> None:
        self.metrics.certificate_reloads.labels("loaded" if outcome.loaded else "error").inc()


class ClientCertificateGate:
    """With --client-ca: a request on a connection without a verified client certificate gets 403,
    except the probe paths.

    The TLS context asks every client for a certificate and fails the handshake of one that
    presents a certificate not from the client CA; a client that presents none gets this far.
    """

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in PROBE_PATHS or verified_client(environ.get("gunicorn.socket")):
            return self.app(environ, start_response)
        reason = "a client certificate from the webhook's client CA is required"
        log.warning(
            "rejected",
            extra=fields(path=path, status=403, reason=reason, peer=environ.get("REMOTE_ADDR")),
        )
        body = jsoncodec.dumps({"error": reason})
        start_response(
            "403 FORBIDDEN", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def open_sources(
    settings: Settings, check: Callable[[PolicySet], PolicySet] | None = None
) -> tuple[PolicySource, CertificateSource]:
    """Load the policies and the certificate once, with logging; the caller checks healthy().

    `check` is applied to every policy set loaded, this one and each reload (ClusterGate.check).
    """
    if settings.cert is None or settings.key is None:
        raise ValueError("serving needs --cert and --key")

    def checked(path: str) -> PolicySet:
        assert check is not None
        return check(load_policies(path, allow_empty=settings.allow_empty))

    loader = checked if check is not None else None
    policies = PolicySource(settings.policies, loader, allow_empty=settings.allow_empty)
    policies.subscribe(log_outcome("policies"))
    certificates = CertificateSource(
        settings.cert, settings.key, client_ca=settings.client_ca, read_timeout=settings.read_timeout
    )
    certificates.subscribe(log_outcome("TLS certificate"))
    policies.poll()
    certificates.poll()
    return policies, certificates
