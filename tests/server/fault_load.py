"""A small load driver for the fault tests: threads posting one review over verified HTTPS, each
outcome recorded with its timing, and every new connection's handshake recorded on its own.

Each thread keeps its connection alive, as the apiserver does, and opens a new one after a failure
or, with `requests_per_connection`, after that many requests. With `split_pause`, every request is
sent in two halves that far apart, so that requests are reliably in flight when a fault strikes.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509

# Generous: on loopback a request takes milliseconds; a slow CI machine can stall for seconds.
CLIENT_TIMEOUT = 20.0

Classify = Callable[[int, bytes], str | None]


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (monotonic seconds), when it ended, and what came back."""

    thread: int
    started: float
    finished: float
    status: int | None
    error: str | None
    value: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass(frozen=True)
class Handshake:
    """One new connection: whether its TLS handshake (chain and host name verified) succeeded."""

    at: float
    serial: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Load:
    """Threads sending `body` to `path` until stopped; use as a context manager."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext,
        body: bytes,
        headers: Mapping[str, str],
        *,
        path: str = "/mutate",
        threads: int = 4,
        requests_per_connection: int | None = None,
        split_pause: float = 0.0,
        classify: Classify | None = None,
    ) -> None:
        self.port, self.context, self.body, self.headers, self.path = port, context, body, headers, path
        self.requests_per_connection = requests_per_connection
        self.split_pause = split_pause
        self.classify = classify
        self.outcomes: list[Outcome] = []
        self.handshakes: list[Handshake] = []
        # thread -> monotonic time its current request paused half-sent (split mode), else absent.
        self.pausing: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"load-{n}", daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)

    def snapshot(self) -> tuple[list[Outcome], list[Handshake]]:
        with self._lock:
            return list(self.outcomes), list(self.handshakes)

    def paused_for(self, at_least: float, at_most: float) -> int:
        """How many threads have had a request half-sent for between `at_least` and `at_most` seconds."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for since in self.pausing.values() if at_least <= now - since <= at_most)

    def figures(self, until: float | None = None) -> dict[str, float | int]:
        """Requests sent and failed, p50/p99 latency of the answered ones (ms), handshakes and failed
        handshakes; only what started before `until`, if given."""
        outcomes, handshakes = self.snapshot()
        if until is not None:
            outcomes = [o for o in outcomes if o.started < until]
            handshakes = [h for h in handshakes if h.at < until]
        latencies = [(o.finished - o.started) * 1000 for o in outcomes if o.ok]
        return {
            "requests": len(outcomes),
            "failed": sum(1 for o in outcomes if not o.ok),
            "p50_ms": round(percentile(latencies, 0.50), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "handshakes": len(handshakes),
            "handshake_failures": sum(1 for h in handshakes if not h.ok),
        }

    def _run(self, thread: int) -> None:
        conn: http.client.HTTPSConnection | None = None
        served = 0
        while not self._stop.is_set():
            if conn is None:
                conn = self._connect()
                served = 0
                if conn is None:
                    time.sleep(0.05)
                    continue
            outcome = self._request(conn, thread)
            with self._lock:
                self.outcomes.append(outcome)
            served += 1
            limit = self.requests_per_connection
            if not outcome.ok or (limit is not None and served >= limit):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _connect(self) -> http.client.HTTPSConnection | None:
        raw: socket.socket | None = None
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=CLIENT_TIMEOUT)
            # As http.client's own connect() does: no Nagle delay on small requests.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
        except OSError as error:
            if raw is not None:
                raw.close()
            self._record_handshake(None, error)
            return None
        der = tls.getpeercert(binary_form=True)
        serial = x509.load_der_x509_certificate(der).serial_number if der else None
        self._record_handshake(serial, None)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        conn.sock = tls
        return conn

    def _record_handshake(self, serial: int | None, error: OSError | None) -> None:
        # A refused connection (nothing listening any more) is not a handshake that failed.
        if isinstance(error, ConnectionRefusedError):
            return
        failure = f"{type(error).__name__}: {error}" if error is not None else None
        with self._lock:
            self.handshakes.append(Handshake(time.monotonic(), serial, failure))

    def _request(self, conn: http.client.HTTPSConnection, thread: int) -> Outcome:
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        value: str | None = None
        try:
            if self.split_pause:
                self._send_in_halves(conn, thread)
            else:
                conn.request("POST", self.path, self.body, dict(self.headers))
            reply = conn.getresponse()
            data = reply.read()
            status = reply.status
            value = self.classify(status, data) if self.classify else None
        except (OSError, http.client.HTTPException) as failure:
            error = f"{type(failure).__name__}: {failure}"
        finally:
            with self._lock:
                self.pausing.pop(thread, None)
        return Outcome(thread, started, time.monotonic(), status, error, value)

    def _send_in_halves(self, conn: http.client.HTTPSConnection, thread: int) -> None:
        half = len(self.body) // 2
        conn.putrequest("POST", self.path)
        for name, value in {**self.headers, "Content-Length": str(len(self.body))}.items():
            conn.putheader(name, value)
        conn.endheaders(self.body[:half])
        with self._lock:
            self.pausing[thread] = time.monotonic()
        time.sleep(self.split_pause)
        conn.send(self.body[half:])


def figures_line(scenario: str, figures: Mapping[str, object]) -> str:
    """One printable line of figures, for `make soak` and the test log."""
    return f"fault-figures {scenario}: " + " ".join(f"{k}={v}" for k, v in figures.items())


def certificate_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number
