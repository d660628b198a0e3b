"""The cluster facts the server keeps current (docs/cluster.md): Namespaces and LimitRanges, listed, watched.

Each gunicorn worker keeps its own copy (threads do not survive the fork), on two daemon threads, one per
resource. A thread lists its resource (500 at a time), hands the whole set over, then watches from the
list's resourceVersion; the apiserver ends each watch after WATCH_SECONDS and lightkube opens the next one
from the last version seen. Any error, 410 Gone (that version is older than the apiserver remembers)
included, means a fresh list after a backoff, which also drops objects deleted while nobody watched.
Readers get an immutable ClusterFacts, swapped in one assignment after every change.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from webhook.errors import PolicyError, PolicyIssue, SettingsError
from webhook.kube.cluster import ClusterFacts, namespace_labels
from webhook.kube.limitrange import LimitRange, parse_limit_range
from webhook.policy.model import PolicySet
from webhook.server.logs import LOGGER, fields

if TYPE_CHECKING:
    from lightkube import Client
    from lightkube.config.kubeconfig import SingleConfig

log = logging.getLogger(f"{LOGGER}.cluster")

# Where the kubelet mounts a pod's service account token (when the pod spec lets it).
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IN_CLUSTER_HOST = "KUBERNETES_SERVICE_HOST"
PAGE = 500  # objects per list request (limit/continue)
# client-go's reflectors ask for 5 to 10 minutes; a watch that lasts this long is re-opened by lightkube.
WATCH_SECONDS = 290
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# A namespace the cache has not seen yet (created a moment ago): one GET, at most this long, per miss.
LOOKUP_SECONDS = 1.0
# After a failed lookup, the namespace stays unknown this long before the next try (the API is down).
LOOKUP_RETRY_SECONDS = 5.0
HINT = "the server's namespace cache has not seen it (docs/cluster.md)"


def in_cluster(environ: Mapping[str, str] = os.environ, account: Path = SERVICE_ACCOUNT) -> bool:
    """A pod whose service account token is mounted: the only way the server finds a cluster unasked."""
    return bool(environ.get(IN_CLUSTER_HOST)) and (account / "token").is_file()


def load_config(kubeconfig: Path | None, context: str | None = None) -> SingleConfig:
    """--kubeconfig (its --context, else its current one); without it the pod's service account, then
    $KUBECONFIG and ~/.kube/config, as kubectl looks. SettingsError names what is wrong."""
    from lightkube import ConfigError, KubeConfig

    try:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig is not None else KubeConfig.from_env()
        found = config.get(context)
    except (ConfigError, OSError, ValueError) as error:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig is not None else "no cluster configuration"
        raise SettingsError(f"{where}: {error}") from None
    if found is None:
        raise SettingsError(f"--kubeconfig {kubeconfig}: no current context; give --context")
    return found


def connect(config: SingleConfig, *, timeout: float = 10.0) -> Client:
    import httpx2
    from lightkube import Client

    return Client(config, timeout=httpx2.Timeout(timeout), field_manager="podgate")


class ClusterCache:
    """Namespace labels and LimitRanges of the whole cluster, current within a watch event."""

    def __init__(self, config: SingleConfig, *, limit_ranges: bool = True) -> None:
        self._config = config
        self._labels: dict[str, Mapping[str, str]] = {}
        self._ranges: dict[tuple[str, str], LimitRange] = {}
        self._with_ranges = limit_ranges
        self._facts = ClusterFacts(unknown_hint=HINT)
        self._lock = threading.Lock()
        self._synced = {"namespaces": threading.Event()}
        if limit_ranges:
            self._synced["limitranges"] = threading.Event()
        self._errors: dict[str, str] = {}
        self._missed: dict[str, float] = {}  # namespace -> monotonic time of its failed lookup
        self._client: Client | None = None
        self._lookup: Client | None = None

    # -- readers ------------------------------------------------------------------------------------------

    def facts(self) -> ClusterFacts:
        return self._facts

    def synced(self) -> bool:
        return all(event.is_set() for event in self._synced.values())

    def problems(self) -> list[str]:
        """What keeps the server from being ready: a resource whose first list has not come back."""
        problems = []
        for name, event in self._synced.items():
            if not event.is_set():
                error = self._errors.get(name)
                problems.append(f"{name} not synced yet" + (f": {error}" if error else ""))
        return problems

    def facts_for(self, namespace: str) -> ClusterFacts:
        """The facts, after one bounded GET if `namespace` is new to the cache: a pod may follow its
        namespace's creation faster than the watch event does."""
        facts = self._facts
        if not namespace or facts.labels_of(namespace) is not None or not self.synced():
            return facts
        missed = self._missed.get(namespace)
        if missed is not None and time.monotonic() - missed < LOOKUP_RETRY_SECONDS:
            return facts
        try:
            from lightkube.resources.core_v1 import Namespace

            found = self._lookup_client().get(Namespace, namespace)
        except Exception as error:  # the API is unreachable, or the namespace does not exist
            self._missed[namespace] = time.monotonic()
            log.warning("namespace lookup failed", extra=fields(namespace=namespace, error=str(error)))
            return facts
        self._missed.pop(namespace, None)
        self._on_namespace("ADDED", found.to_dict())
        return self._facts

    # -- the watch threads --------------------------------------------------------------------------------

    def start(self) -> None:
        from lightkube.resources.core_v1 import LimitRange as LimitRangeResource
        from lightkube.resources.core_v1 import Namespace

        self._client = connect(self._config)
        Reflector(self._client, Namespace, "namespaces", self._replace_namespaces, self._on_namespace, self)
        if self._with_ranges:
            resource = LimitRangeResource
            Reflector(self._client, resource, "limitranges", self._replace_ranges, self._on_range, self)

    def _lookup_client(self) -> Client:
        if self._lookup is None:
            self._lookup = connect(self._config, timeout=LOOKUP_SECONDS)
        return self._lookup

    def _replace_namespaces(self, objects: list[dict[str, Any]]) -> None:
        with self._lock:
            self._labels = {name: MappingProxyType(labels) for name, labels in map(namespace_labels, objects)}
            self._publish()

    def _on_namespace(self, event: str, obj: dict[str, Any]) -> None:
        name, labels = namespace_labels(obj)
        with self._lock:
            if event == "DELETED":
                self._labels.pop(name, None)
            else:
                self._labels[name] = MappingProxyType(labels)
            self._publish()

    def _replace_ranges(self, objects: list[dict[str, Any]]) -> None:
        with self._lock:
            self._ranges = {_key(obj): parse_limit_range(obj) for obj in objects}
            self._publish()

    def _on_range(self, event: str, obj: dict[str, Any]) -> None:
        with self._lock:
            if event == "DELETED":
                self._ranges.pop(_key(obj), None)
            else:
                self._ranges[_key(obj)] = parse_limit_range(obj)
            self._publish()

    def _publish(self) -> None:
        by_namespace: dict[str, list[LimitRange]] = {}
        for (namespace, _), limit_range in sorted(self._ranges.items()):
            by_namespace.setdefault(namespace, []).append(limit_range)
        self._facts = ClusterFacts(
            MappingProxyType(dict(self._labels)),
            MappingProxyType({namespace: tuple(found) for namespace, found in by_namespace.items()}),
            limit_ranges_known=self._with_ranges,
            unknown_hint=HINT,
        )

    def synced_event(self, name: str) -> threading.Event:
        return self._synced[name]

    def record_error(self, name: str, error: str | None) -> None:
        if error is None:
            self._errors.pop(name, None)
        else:
            self._errors[name] = error


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class Reflector:
    """One resource kept by list + watch on a daemon thread, until the process exits."""

    def __init__(
        self,
        client: Client,
        resource: Any,
        name: str,
        replace: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
        cache: ClusterCache,
    ) -> None:
        self.client, self.resource, self.name = client, resource, name
        self.replace, self.apply, self.cache = replace, apply, cache
        self.namespaced = name != "namespaces"
        self.listed = False
        threading.Thread(target=self._run, name=f"podgate-watch-{name}", daemon=True).start()

    def _run(self) -> None:
        failures = 0
        while True:
            self.listed = False
            try:
                self._list_and_watch()
            except Exception as error:
                # A watch that broke after a good list starts the backoff over: the API answers.
                failures = 0 if self.listed else failures
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                self.cache.record_error(self.name, f"{type(error).__name__}: {error}")
                log.warning(
                    "watch failed; listing again",
                    extra=fields(resource=self.name, error=str(error), retryInSeconds=delay, pid=os.getpid()),
                )
                time.sleep(delay)

    def _list_and_watch(self) -> None:
        scope: dict[str, Any] = {"namespace": "*"} if self.namespaced else {}
        listed = self.client.list(self.resource, chunk_size=PAGE, **scope)
        objects = [obj.to_dict() for obj in listed]
        version = listed.resourceVersion  # the list's, known once every page is read
        self.replace(objects)
        self.listed = True
        event = self.cache.synced_event(self.name)
        if not event.is_set():
            log.info("synced", extra=fields(resource=self.name, objects=len(objects), pid=os.getpid()))
        event.set()
        self.cache.record_error(self.name, None)
        for kind, obj in self.client.watch(
            self.resource, resource_version=version, server_timeout=WATCH_SECONDS, **scope
        ):
            self.apply(kind, obj.to_dict())


def require_access(policies: PolicySet, *, cache: ClusterCache | None) -> PolicySet:
    """A policy set that reads namespace labels, for a server that cannot get them, does not load."""
    if cache is not None or not policies.needs_namespace_labels:
        return policies
    issues = []
    for policy in policies.policies:
        if policy.needs_namespace_labels:
            file, _, line = policy.source.rpartition(":")
            message = (
                "namespaceSelector needs namespace labels, but podgate serve has no cluster to read them "
                "from: give --kubeconfig, or run it in a cluster with its service account token "
                "(docs/cluster.md)"
            )
            issues.append(PolicyIssue(file, int(line) if line.isdigit() else 0, "spec", message))
    raise PolicyError(issues)


class ClusterGate:
    """Whether `podgate serve` reads the cluster, decided once at start (`decide`), and the check every
    later policy reload passes (`check`): a set that needs namespace labels does not load without it."""

    def __init__(
        self, kubeconfig: Path | None, context: str | None, *, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.kubeconfig, self.context, self.environ = kubeconfig, context, environ
        self.cache: ClusterCache | None = None
        self.decided = False

    def check(self, policies: PolicySet) -> PolicySet:
        return require_access(policies, cache=self.cache) if self.decided else policies

    def decide(self, policies: PolicySet | None) -> ClusterCache | None:
        """A cache (not started) when given a kubeconfig, run in a pod with its token, or when a policy
        needs namespace labels; None otherwise: the server then never imports a Kubernetes client."""
        self.decided = True
        needing = [p.name for p in policies.policies if p.needs_namespace_labels] if policies else []
        if self.kubeconfig is None and not in_cluster(self.environ) and not needing:
            return None
        try:
            config = load_config(self.kubeconfig, self.context)
        except SettingsError as error:
            if self.kubeconfig is None and needing:
                raise SettingsError(
                    f"policy {needing[0]} selects namespaces by label, so podgate serve needs a cluster "
                    f"(--kubeconfig, or its service account in a pod): {error}"
                ) from None
            raise
        self.cache = ClusterCache(config)
        return self.cache
