"""webhook/server/worker.py under real gunicorn over TLS: connections with nothing to say hold no thread.

The kube-apiserver's Go client dials spare connections under a burst and leaves them idle after the
handshake. With gunicorn's gthread worker each such connection held a request thread until the read
timeout, and the reviews behind them waited past the apiserver's webhook timeout (issue 16).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving_support import (
    APISERVER_HEADERS,
    Server,
    client_context,
    client_hello,
    fixture_files,
    pinned_policies,
    serve,
)
from tests.tls_support import Pki

pytestmark = pytest.mark.serving

THREADS = 2
READ_TIMEOUT = 10.0
KEEPALIVE = 2
# Well under READ_TIMEOUT: a review that waited for a thread held by a silent connection cannot make it.
ANSWER_BOUND = 4.0


@contextlib.contextmanager
def serving(pki: Pki, workdir: Path, *extra: str) -> Iterator[Server]:
    args = ["--threads", str(THREADS), "--read-timeout", str(READ_TIMEOUT), *extra]
    with serve(pinned_policies(workdir / "policies"), pki, workdir, workers=1, args=args) as running:
        yield running


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker with THREADS threads, keeping idle connections as long as deploy/ does (120 s)."""
    with serving(pki, tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="module")
def brief(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same, closing connections idle for KEEPALIVE seconds."""
    with serving(pki, tmp_path_factory.mktemp("serve"), "--keepalive", str(KEEPALIVE)) as running:
        yield running


def handshaken(server: Server) -> ssl.SSLSocket:
    """A TLS connection that has done its handshake and sends nothing: a Go client's spare connection."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return client_context(server.ca).wrap_socket(raw, server_hostname="127.0.0.1")


def request_bytes(path: str, body: bytes = b"") -> bytes:
    head = f"{'POST' if body else 'GET'} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += "".join(f"{name}: {value}\r\n" for name, value in APISERVER_HEADERS.items())
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {head!r}")


def read_response(tls: ssl.SSLSocket, pending: bytearray | None = None) -> tuple[int, bytes]:
    """One HTTP response off `tls`: its status and body. Bytes past it stay in `pending`."""
    data = pending if pending is not None else bytearray()
    while b"\r\n\r\n" not in data:
        data += tls.recv(65536)
    end = data.index(b"\r\n\r\n")
    head, length = bytes(data[:end]), content_length(bytes(data[:end]))
    while len(data) < end + 4 + length:
        data += tls.recv(65536)
    body = bytes(data[end + 4 : end + 4 + length])
    del data[: end + 4 + length]
    return int(head.split()[1]), body


def test_idle_and_half_handshaken_connections_hold_no_thread(server: Server) -> None:
    idle = [handshaken(server) for _ in range(3 * THREADS)]
    # And connections stuck in their handshake: a ClientHello's first bytes, then nothing.
    stuck = []
    for _ in range(THREADS):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        raw.sendall(client_hello(server)[:20])
        stuck.append(raw)
    try:
        time.sleep(0.5)  # each of them has reached the server, which has looked at it
        started = time.monotonic()
        status, answer = server.post_review("/mutate", fixture_files("mutate")[0].read_bytes())
        waited = time.monotonic() - started
        assert status == 200 and answer["response"]["allowed"] is True
        assert waited < ANSWER_BOUND
        # The idle connections were kept, not cut off: each still gets its request answered.
        for tls in idle:
            tls.sendall(request_bytes("/healthz"))
            assert read_response(tls) == (200, b'{"status":"alive"}')
    finally:
        for sock in [*idle, *stuck]:
            sock.close()
    assert not [line for line in server.log_lines() if line.get("message") == "slow client cut off"]


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_keepalive(brief: Server) -> None:
    with socket.create_connection(("127.0.0.1", brief.port), timeout=30) as raw:
        started = time.monotonic()
        assert raw.recv(1024) == b""
        assert KEEPALIVE * 0.9 <= time.monotonic() - started < KEEPALIVE + ANSWER_BOUND


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive(brief: Server) -> None:
    with contextlib.closing(handshaken(brief)) as tls:
        tls.sendall(request_bytes("/healthz"))
        assert read_response(tls)[0] == 200
        started = time.monotonic()
        assert tls.recv(1024) == b""
        assert KEEPALIVE * 0.9 <= time.monotonic() - started < KEEPALIVE + ANSWER_BOUND


def test_pipelined_requests_are_all_answered(server: Server) -> None:
    """The second request arrives with the first, so it is already read when the first is answered:
    epoll will never report it, the thread must serve it there and then."""
    body = fixture_files("validate")[0].read_bytes()
    with contextlib.closing(handshaken(server)) as tls:
        tls.settimeout(ANSWER_BOUND)
        tls.sendall(request_bytes("/validate", body) + request_bytes("/healthz") + request_bytes("/readyz"))
        pending = bytearray()
        statuses = [read_response(tls, pending)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]


def test_headers_and_body_come_in_one_tls_record(server: Server) -> None:
    """One record: the apiserver's reader wakes once per answer, not once for the headers and again
    for the body. A TLS read returns at most one record, so one read must hold the whole response."""
    body = fixture_files("mutate")[0].read_bytes()
    with contextlib.closing(handshaken(server)) as tls:
        tls.sendall(request_bytes("/mutate", body))
        first = tls.recv(65536)
    head, _, answer = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and len(answer) == content_length(head)
    assert json.loads(answer)["response"]["allowed"] is True
