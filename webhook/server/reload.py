"""Hot reload of the policy directory and the TLS certificate: poll, build aside, swap one reference.

A mounted ConfigMap is a directory of symlinks into `..data`, which the kubelet repoints atomically;
a certificate Secret is the same. Each source fingerprints the files it would read (resolved through
symlinks), builds the new object only when the bytes changed, and keeps the last good one when the
new one does not load. Readers take one reference and never see a half-built state.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from webhook.errors import PolicyError
from webhook.policy.loader import load_policies
from webhook.policy.model import PolicySet
from webhook.server.logs import FIELDS, LOGGER, fields
from webhook.server.tls import DEFAULT_READ_TIMEOUT, server_context

log = logging.getLogger(f"{LOGGER}.reload")

# While the files on disk do not load, say so again this often: one error line at the time of the edit
# scrolls away, and the server keeps serving the last good set as if nothing were wrong.
REMIND_EVERY = 60.0


def policy_files(root: Path) -> list[Path]:
    """The files in `root` the loader may read (it is flat); hidden ones (the kubelet's `..data`) skipped."""
    if not root.is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_file())


def fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over each file's name and bytes; a file that cannot be read counts as its error."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as err:
            digest.update(f"<{err.strerror}>".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def stat_signature(paths: Iterable[Path]) -> tuple[tuple[str, str, int, int], ...]:
    """Cheap change detection: where each file resolves to, its mtime and size."""
    signature = []
    for path in paths:
        try:
            st = path.stat()
            signature.append((str(path), os.path.realpath(path), st.st_mtime_ns, st.st_size))
        except OSError:
            signature.append((str(path), "", -1, -1))
    return tuple(signature)


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload attempt did: loaded a new set, or kept the last good one because of `error`."""

    source: str
    digest: str | None
    previous: str | None
    error: Exception | None = None
    # Set on a reminder that the files still do not load: seconds since the first failed attempt.
    failing_for: float | None = None
    # Unix time of the attempt, for the last-success metric.
    at: float = 0.0

    @property
    def loaded(self) -> bool:
        return self.error is None

    @property
    def reminder(self) -> bool:
        """Not an attempt: the failure of an earlier one, repeated because it persists."""
        return self.failing_for is not None


Listener = Callable[[ReloadOutcome], None]


class PolicySource:
    """The policy set currently served, reloaded from `path` when its files change.

    While the files do not load, `failing()` is true and every poll after `remind_every` seconds
    repeats the failure to the listeners (an outcome with `failing_for` set) until a load succeeds.
    """

    def __init__(
        self,
        path: Path,
        loader: Callable[[str], PolicySet] | None = None,
        *,
        allow_empty: bool = False,
        remind_every: float = REMIND_EVERY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._loader = loader or partial(load_policies, allow_empty=allow_empty)
        self._policies: PolicySet | None = None
        self._signature: tuple[tuple[str, str, int, int], ...] | None = None
        self._attempted: str | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._remind_every, self._clock, self._wall_clock = remind_every, clock, wall_clock
        self._failure: ReloadOutcome | None = None  # the last failed attempt, until a load succeeds
        self._failing_since = self._reminded = 0.0
        self.loaded_at: float | None = None  # Unix time the served set was loaded

    def current(self) -> PolicySet | None:
        return self._policies

    def healthy(self) -> bool:
        return self._policies is not None

    def failing(self) -> bool:
        """The files on disk did not load at the last attempt (the last good set, if any, is served)."""
        return self._failure is not None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def poll(self) -> ReloadOutcome | None:
        """Reload if the files changed since the last attempt; None when there was nothing to do."""
        with self._lock:
            files = policy_files(self.path)
            signature = stat_signature(files)
            if signature == self._signature:
                outcome = self._reminder()
            elif (content := fingerprint(files)) == self._attempted:
                self._signature = signature
                outcome = self._reminder()
            else:
                outcome = self._load(content)
            if outcome is None:
                return None
        for listener in self._listeners:
            listener(outcome)
        return outcome

    def _load(self, content: str) -> ReloadOutcome | None:
        previous = self._policies.digest if self._policies is not None else None
        policies: PolicySet | None = None
        error: Exception | None = None
        try:
            policies = self._loader(str(self.path))
        except (PolicyError, OSError, UnicodeDecodeError) as err:
            error = err
        # The files changed while we read them (a ConfigMap swap half seen): try again next poll.
        files = policy_files(self.path)
        if fingerprint(files) != content:
            return None
        self._signature, self._attempted = stat_signature(files), content
        now, at = self._clock(), self._wall_clock()
        if policies is None:
            if self._failure is None:
                self._failing_since = now
            self._reminded = now
            self._failure = ReloadOutcome(str(self.path), None, previous, error, at=at)
            return self._failure
        self._policies, self._failure, self.loaded_at = policies, None, at
        return ReloadOutcome(str(self.path), policies.digest, previous, at=at)

    def _reminder(self) -> ReloadOutcome | None:
        now = self._clock()
        if self._failure is None or now - self._reminded < self._remind_every:
            return None
        self._reminded = now
        return replace(self._failure, failing_for=now - self._failing_since, at=self._wall_clock())


class CertificateSource:
    """The server's TLS context, rebuilt when the certificate, key or client CA file changes (rotation).

    gunicorn asks its `ssl_context` hook for a context for every connection it accepts, so
    swapping the reference is enough: new connections get the new certificate, open ones keep theirs.
    """

    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        client_ca: Path | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.read_timeout = read_timeout
        self._context: ssl.SSLContext | None = None
        self._signature: tuple[tuple[str, str, int, int], ...] | None = None
        self._attempted: str | None = None
        self._digest: str | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def describe(self) -> str:
        described = f"{self.cert} + {self.key}"
        return f"{described} (clients: {self.client_ca})" if self.client_ca else described

    def files(self) -> list[Path]:
        return [self.cert, self.key] + ([self.client_ca] if self.client_ca else [])

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            raise RuntimeError("no TLS certificate loaded yet: poll() first")
        return self._context

    def healthy(self) -> bool:
        return self._context is not None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def poll(self) -> ReloadOutcome | None:
        with self._lock:
            files = self.files()
            signature = stat_signature(files)
            if signature == self._signature:
                return None
            content = fingerprint(files)
            self._signature = signature
            if content == self._attempted:
                return None
            self._attempted = content
            try:
                context = server_context(
                    self.cert, self.key, client_ca=self.client_ca, read_timeout=self.read_timeout
                )
            except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
                # Mid-rotation the new certificate may sit next to the old key; the next change retries.
                outcome = ReloadOutcome(self.describe(), None, self._digest, err)
            else:
                outcome = ReloadOutcome(self.describe(), content, self._digest)
                self._context, self._digest = context, content
        for listener in self._listeners:
            listener(outcome)
        return outcome


class Poller:
    """A daemon thread that polls sources every `interval` seconds; one per gunicorn worker."""

    def __init__(self, sources: Sequence[PolicySource | CertificateSource], interval: float) -> None:
        self.sources = sources
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podgate-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        # Poll at once: a worker forked late inherits the set the master loaded at start-up.
        while True:
            for source in self.sources:
                try:
                    source.poll()
                except Exception:
                    # A poll must never kill the thread: the next one may succeed.
                    log.exception("reload poll failed", extra=fields(source=type(source).__name__))
            if self._stop.wait(self.interval):
                return


def log_outcome(what: str) -> Listener:
    """A listener that logs each reload attempt; a failed one with every file:line problem."""

    def listener(outcome: ReloadOutcome) -> None:
        # Every worker reloads on its own: the pid tells their lines apart.
        context = fields(
            source=outcome.source, digest=outcome.digest, previous=outcome.previous, pid=os.getpid()
        )
        if outcome.loaded:
            log.info("%s loaded", what, extra=context)
            return
        error = outcome.error
        problems = [str(issue) for issue in error.issues] if isinstance(error, PolicyError) else [str(error)]
        context[FIELDS]["problems"] = problems
        if outcome.failing_for is not None:
            context[FIELDS]["failingSeconds"] = round(outcome.failing_for)
            serving = "; still serving the last good ones" if outcome.previous is not None else ""
            log.error("%s still do not load%s", what, serving, extra=context)
        elif outcome.previous is None:
            log.error("%s did not load", what, extra=context)
        else:
            log.error("%s did not load; still serving the last good ones", what, extra=context)

    return listener
