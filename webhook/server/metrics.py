"""Prometheus metrics, correct in one process and across gunicorn workers (multiprocess mode).

prometheus_client picks its value storage when it is first imported: `podgate serve` sets
PROMETHEUS_MULTIPROC_DIR before that happens, so every worker writes its own mmap file and
`/metrics` adds them up. Nothing here records a value at construction, so building the app in
gunicorn's master (preload) leaves no stale series behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Admission calls take milliseconds; the apiserver gives up after its timeoutSeconds (10 s by default).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's child_exit hook); its counters stay counted."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The server's metrics. In multiprocess mode they are not registered anywhere: /metrics reads files."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode a registered metric would be reported twice (live object + its file).
        registry = None if multiprocess_enabled() else self.registry
        self.requests = Counter(
            "podgate_admission_requests",
            "Admission requests answered, by endpoint, kind, operation and result.",
            ["endpoint", "kind", "operation", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "podgate_admission_duration_seconds",
            "Time from reading the request to having the response body, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.mutations = Counter(
            "podgate_mutations",
            "Admission requests in which a mutating rule changed the object, by policy and rule.",
            ["policy", "rule"],
            registry=registry,
        )
        self.violations = Counter(
            "podgate_violations",
            "Admission requests in which a validating rule found a violation, by policy, rule and action.",
            ["policy", "rule", "action"],
            registry=registry,
        )
        self.policy_reloads = Counter(
            "podgate_policy_reloads",
            "Attempts to load a changed policy directory, by result (loaded or error).",
            ["result"],
            registry=registry,
        )
        self.certificate_reloads = Counter(
            "podgate_certificate_reloads",
            "Attempts to load a changed TLS certificate and key, by result (loaded or error).",
            ["result"],
            registry=registry,
        )
        self.policy_set = Gauge(
            "podgate_policy_set_info",
            "1 for the policy set each live worker serves, labelled with its sha256 digest.",
            ["digest"],
            multiprocess_mode="liveall",
            registry=registry,
        )

    def admission(self, endpoint: str, kind: str, operation: str, result: str, seconds: float) -> None:
        self.requests.labels(endpoint, kind, operation, result).inc()
        self.latency.labels(endpoint).observe(seconds)

    def acted(self, mutated: Iterable[tuple[str, str]], violated: Iterable[tuple[str, str, str]]) -> None:
        """Count each (policy, rule) once per request, however many paths or containers it touched."""
        for policy, rule in sorted(set(mutated)):
            self.mutations.labels(policy, rule).inc()
        for policy, rule, action in sorted(set(violated)):
            self.violations.labels(policy, rule, action).inc()

    def serving(self, digest: str, previous: str | None) -> None:
        if previous is not None and previous != digest:
            self.policy_set.labels(previous).set(0)
        self.policy_set.labels(digest).set(1)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type: every worker's values, or this process's."""
        if multiprocess_enabled():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
