"""Prometheus metrics, correct in one process and across gunicorn workers (multiprocess mode).

prometheus_client picks its value storage when it is first imported: `podgate serve` sets
PROMETHEUS_MULTIPROC_DIR before that happens, so every worker writes its own mmap file and
`/metrics` adds them up. Nothing here records a value at construction, so building the app in
gunicorn's master (preload) leaves no stale series behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from webhook.server.reload import ReloadOutcome

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Admission calls take milliseconds; the apiserver gives up after its timeoutSeconds (10 s by default).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POLICY_SET_INFO = "podgate_policy_set_info"


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
        # Labelled children of the per-review metrics, by (metric, label values): see _child.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
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
            POLICY_SET_INFO,
            "1 for the policy set each live worker serves, labelled with its sha256 digest.",
            ["digest"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        # Every worker reloads on its own; max: 1 as soon as one of them cannot load the files.
        self.policy_reload_failing = Gauge(
            "podgate_policy_reload_failing",
            "1 while the policy files on disk do not load (the last good set is still served); "
            "0 after a successful load.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.policy_last_success = Gauge(
            "podgate_policy_last_success_timestamp_seconds",
            "Unix time at which the policy set being served was loaded.",
            multiprocess_mode="livemax",
            registry=registry,
        )

    def admission(self, endpoint: str, kind: str, operation: str, result: str, seconds: float) -> None:
        self._child(self.requests, (endpoint, kind, operation, result)).inc()
        self._child(self.latency, (endpoint,)).observe(seconds)

    def acted(self, mutated: Iterable[tuple[str, str]], violated: Iterable[tuple[str, str, str]]) -> None:
        """Count each (policy, rule) once per request, however many paths or containers it touched."""
        for policy, rule in sorted(set(mutated)):
            self._child(self.mutations, (policy, rule)).inc()
        for policy, rule, action in sorted(set(violated)):
            self._child(self.violations, (policy, rule, action)).inc()

    def _child(self, metric: Any, values: tuple[str, ...]) -> Any:
        """`metric.labels(*values)`, looked up once per label set: prometheus_client's own lookup takes a
        lock and converts every value on each call, several times per review. Only for metrics whose
        series are never removed (unlike policy_set's)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def serving(self, digest: str, previous: str | None) -> None:
        """Only the set served now has a series: one per digest ever loaded would grow without end."""
        if previous is not None and previous != digest:
            # A worker's file keeps every label set it ever wrote; 0 marks it for render() to leave out.
            self.policy_set.labels(previous).set(0)
            self.policy_set.remove(previous)
        self.policy_set.labels(digest).set(1)

    def policies_loaded(self, digest: str, previous: str | None, at: float) -> None:
        self.serving(digest, previous)
        self.policy_reload_failing.set(0)
        self.policy_last_success.set(at)

    def policy_reload(self, outcome: ReloadOutcome) -> None:
        """A PolicySource listener: count each attempt and follow its result (a reminder is no attempt)."""
        if not outcome.reminder:
            self.policy_reloads.labels("loaded" if outcome.loaded else "error").inc()
        if not outcome.loaded:
            self.policy_reload_failing.set(1)
        elif outcome.digest is not None:
            self.policies_loaded(outcome.digest, outcome.previous, outcome.at)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type: every worker's values, or this process's."""
        if multiprocess_enabled():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(_WithoutRetiredSets(registry)), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _WithoutRetiredSets(CollectorRegistry):
    """The workers' files, less the policy sets they no longer serve (set to 0 by `serving`)."""

    def __init__(self, source: CollectorRegistry) -> None:
        super().__init__(auto_describe=False)
        self.source = source

    def collect(self) -> Iterator[Metric]:
        for metric in self.source.collect():
            if metric.name == POLICY_SET_INFO:
                metric.samples = [sample for sample in metric.samples if sample.value != 0]
            yield metric
