"""A load generator for HTTPS keep-alive servers: one thread, one selector, many persistent connections.

Why not threads with http.client: http.client parses every response's headers with the email
package, and threads hand the GIL to each other in 5 ms slices, so the generator's own queueing
would show up as server latency. Here each connection is a non-blocking TLS socket, handshaken
(chain and host name verified) before the clock starts; a request is pre-encoded bytes, and a
response is read up to its Content-Length. The loop runs on one CPU and reports how much of that
CPU it used, so a saturated generator is visible rather than mistaken for a slow server.

Two modes:
- open loop (`rate`): request i is due at start + i / rate whatever happened before. A due request
  waits for an idle connection if all are busy, and its latency is counted from when it was due, so
  a server that stalls is charged for every request it delayed (no coordinated omission);
- closed loop (`rate=None`): every connection sends its next request as soon as it has an answer;
  completions per second is the maximum throughput.
"""

from __future__ import annotations

import collections
import itertools
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib

# What the kube-apiserver sends with every call (tests/fixtures/admission-reviews/requests.jsonl).
HEADERS = (
    "User-Agent: kube-apiserver-admission\r\nAccept: application/json, */*\r\n"
    "Content-Type: application/json\r\nAccept-Encoding: gzip\r\n"
)
# After the window closes, requests still queued or in flight get this long to finish.
DRAIN_SECONDS = 5.0


def encode(path: str, port: int, body: bytes) -> bytes:
    head = f"POST {path}?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{HEADERS}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def client_context(ca: Path) -> ssl.SSLContext:
    """Verifies the chain and the host name, as the apiserver does with the webhook's caBundle."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class _Connection:
    sock: ssl.SSLSocket
    pending: memoryview = field(default_factory=lambda: memoryview(b""))
    received: bytearray = field(default_factory=bytearray)
    due: float = 0.0  # when the request in flight was due (open loop) or sent (closed loop)
    sent: float = 0.0


@dataclass
class Result:
    offered_rps: float | None
    seconds: float
    completed: int = 0
    errors: int = 0
    not_sent: int = 0  # due in the window but never sent before the drain ended: the rate was not offered
    latencies: list[float] = field(default_factory=list)  # from due time to full response
    service: list[float] = field(default_factory=list)  # from actual send to full response
    lateness: list[float] = field(default_factory=list)  # from due time to actual send
    generator_cpu: float = 0.0  # fraction of one CPU the generator used during the run
    started: float = 0.0
    last_answer: float = 0.0  # when the last counted answer arrived: after the window if a backlog drained

    def summary(self) -> dict[str, float | int | None]:
        ordered_late = sorted(self.lateness)
        figures: dict[str, float | int | None] = {
            "offered_rps": self.offered_rps,
            # Answers over the time it took to give them: below the offered rate once a backlog builds.
            "achieved_rps": round(self.completed / max(self.seconds, self.last_answer - self.started), 1),
            "requests": self.completed,
            "errors": self.errors,
            "not_sent": self.not_sent,
        }
        figures.update({k: round(v, 3) for k, v in benchlib.summary_ms(self.latencies).items()})
        figures["service_p99_ms"] = round(benchlib.summary_ms(self.service)["p99_ms"], 3)
        figures["send_lag_p99_ms"] = round(benchlib.percentile(ordered_late, 0.99) * 1000, 3)
        figures["generator_cpu"] = round(self.generator_cpu, 3)
        return figures


def _complete(buffer: bytes | bytearray) -> int:
    """The size of the whole response at the start of `buffer`, or 0 while some of it is still missing."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return 0
    head = bytes(buffer[: head_end + 2]).lower()  # keep the last header's CRLF: it ends the value
    length_at = head.find(b"content-length:")
    length = int(head[length_at + 15 : head.find(b"\r\n", length_at)]) if length_at >= 0 else 0
    size = head_end + 4 + length
    return size if len(buffer) >= size else 0


class LoadGenerator:
    def __init__(self, port: int, ca: Path, connections: int) -> None:
        self.port = port
        self.context = client_context(ca)
        # select(2) takes microsecond timeouts; epoll's are whole milliseconds, which would make
        # every open-loop send up to 1 ms late at 1,000 req/s.
        self.selector = selectors.SelectSelector()
        self.connections = [self._connect() for _ in range(connections)]

    def _connect(self) -> _Connection:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = self.context.wrap_socket(raw, server_hostname="127.0.0.1")  # handshake, blocking
        # A gthread worker gives a new connection a thread until its first request is answered; only
        # then is it parked in the poller. Dialling 16 idle connections would hold all its threads, so
        # each one asks once, as the apiserver's first call on a new connection does.
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed a new connection")
            answer += chunk
        sock.setblocking(False)
        connection = _Connection(sock)
        self.selector.register(sock, selectors.EVENT_READ, connection)
        return connection

    def close(self) -> None:
        for connection in self.connections:
            self.selector.unregister(connection.sock)
            connection.sock.close()
        self.selector.close()

    def run(self, requests: list[bytes], seconds: float, rate: float | None = None) -> Result:
        """Send `requests` in rotation for `seconds`, at `rate` per second (open loop) or flat out."""
        result = Result(rate, seconds)
        feed = itertools.cycle(requests)
        clock = time.perf_counter
        idle = list(self.connections)
        in_flight: set[int] = set()  # id() of each connection awaiting an answer
        due: collections.deque[float] = collections.deque()
        cpu_before = time.process_time()
        start = clock() + 0.01
        end = start + seconds
        result.started = start
        total = int(seconds * rate) if rate else 0
        scheduled = 0
        while True:
            now = clock()
            if rate:
                while scheduled < total and start + scheduled / rate <= now:
                    due.append(start + scheduled / rate)
                    scheduled += 1
            elif now < end:
                due.extend(now for _ in idle)  # closed loop: every idle connection sends now
            while due and idle:
                connection: _Connection = idle.pop()
                self._send(connection, next(feed), due.popleft(), result)
                in_flight.add(id(connection))
            finished = (scheduled >= total if rate else now >= end) and not due and not in_flight
            if finished or now > end + DRAIN_SECONDS:
                break
            timeout = 0.05
            if rate and scheduled < total and idle:
                timeout = max(0.0, start + scheduled / rate - now)
            for key, events in self.selector.select(timeout):
                connection = key.data
                if events & selectors.EVENT_WRITE:
                    self._flush(connection)
                if events & selectors.EVENT_READ and self._read(connection, result, end):
                    idle.append(connection)
                    in_flight.discard(id(connection))
        result.generator_cpu = (time.process_time() - cpu_before) / max(clock() - start, 1e-9)
        # Given up on after the drain: dial those again, or their late answers would be read as the
        # answers to the next run's requests.
        for connection in self.connections:
            if id(connection) in in_flight:
                self._replace(connection)
        result.not_sent = len(due) + (total - scheduled if rate else 0)
        return result

    def _send(self, connection: _Connection, request: bytes, due: float, result: Result) -> None:
        connection.due = due
        connection.sent = time.perf_counter()
        result.lateness.append(connection.sent - due)
        connection.pending = memoryview(request)
        self._flush(connection)

    def _flush(self, connection: _Connection) -> None:
        try:
            while connection.pending:
                written = connection.sock.send(connection.pending)
                connection.pending = connection.pending[written:]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
        # Ask for writability only while bytes are left over; otherwise only answers matter.
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.pending else 0)
        self.selector.modify(connection.sock, events, connection)

    def _read(self, connection: _Connection, result: Result, end: float) -> bool:
        """Read what arrived; True when a whole response is in (the connection is idle again)."""
        buffer = connection.received
        try:
            # TLS may hold decrypted bytes select() cannot see: read until it asks for more.
            while chunk := connection.sock.recv(65536):
                buffer += chunk
            raise ConnectionResetError("server closed the connection")
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError:
            self._replace(connection)
            result.errors += 1
            return True
        size = _complete(buffer)
        if not size:
            return False
        done = time.perf_counter()
        ok = buffer.startswith(b"HTTP/1.1 200")
        del buffer[:size]
        if not ok:
            result.errors += 1
        elif connection.due <= end:  # answers to requests due after the window are not this run's
            result.completed += 1
            result.last_answer = done
            result.latencies.append(done - connection.due)
            result.service.append(done - connection.sent)
        return True

    def _replace(self, connection: _Connection) -> None:
        """A dropped connection is counted as an error and dialled again, as the apiserver would."""
        self.selector.unregister(connection.sock)
        connection.sock.close()
        fresh = self._connect()
        self.selector.unregister(fresh.sock)
        connection.sock, connection.received, connection.pending = fresh.sock, bytearray(), memoryview(b"")
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)


def timer_lag(seconds: float = 1.0, rate: float = 1000.0) -> dict[str, float]:
    """How late this loop wakes for a due time with nothing else to do: the noise floor of every
    latency figure it reports (a virtual CPU is sometimes taken away for milliseconds)."""
    selector = selectors.SelectSelector()
    reader, writer = socket.socketpair()
    selector.register(reader, selectors.EVENT_READ)
    lags = []
    start = time.perf_counter() + 0.01
    for index in range(int(seconds * rate)):
        due = start + index / rate
        while (now := time.perf_counter()) < due:
            selector.select(due - now)
        lags.append(time.perf_counter() - due)
    selector.close()
    reader.close()
    writer.close()
    return {k: round(v, 3) for k, v in benchlib.summary_ms(lags).items()}
