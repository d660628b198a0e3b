"""webhook/server/tls.py in one process: the server context's choices, and the per-request read deadline."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.tls_support import Pki
from webhook.server.logs import JsonFormatter, SlowClientFilter
from webhook.server.tls import SLACK, DeadlineSocket, SlowClient, server_context, verified_client

# Short, so the tests are quick; the bounds asserted below are many times longer, for slow machines.
TIMEOUT = 0.3
GENEROUS = 5.0


def test_tls_1_2_uses_only_forward_secret_aead_ciphers(pki: Pki) -> None:
    context = server_context(pki.cert, pki.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12, "no TLS 1.2 cipher left"
    assert {(c["kea"], c["aead"]) for c in tls12} == {("kx-ecdhe", True)}
    assert {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"} >= {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    }
    assert context.options & ssl.OP_NO_RENEGOTIATION


def test_client_certificates_are_asked_for_only_with_a_client_ca_and_only_it_is_trusted(pki: Pki) -> None:
    plain = server_context(pki.cert, pki.key)
    assert plain.verify_mode == ssl.CERT_NONE
    with_ca = server_context(pki.cert, pki.key, client_ca=pki.ca)
    # Optional at the TLS layer so probes get through; the app refuses everything else without one.
    assert with_ca.verify_mode == ssl.CERT_OPTIONAL
    # Exactly the given CA: never the system store, which would let any public CA's client through.
    assert with_ca.cert_store_stats()["x509_ca"] == 1
    assert plain.cert_store_stats()["x509_ca"] == 0


@pytest.mark.parametrize(
    "content", [b"", b"not a certificate\n", b"\xff\xfe"], ids=["empty", "text", "binary"]
)
def test_a_client_ca_that_is_not_pem_does_not_load_and_says_which_file(
    pki: Pki, tmp_path: Path, content: bytes
) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_bytes(content)
    with pytest.raises(ValueError, match=f"^{re.escape(str(junk))}: not a PEM CA bundle"):
        server_context(pki.cert, pki.key, client_ca=junk)


def test_a_missing_file_is_named(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.pem"):
        server_context(pki.cert, pki.key, client_ca=tmp_path / "absent.pem")
    with pytest.raises(FileNotFoundError, match=r"absent-key\.pem"):
        server_context(pki.cert, tmp_path / "absent-key.pem")


@contextmanager
def connected(pki: Pki, timeout: float = TIMEOUT) -> Iterator[tuple[DeadlineSocket, socket.socket]]:
    """A server-side DeadlineSocket wrapped as gunicorn wraps it, and the raw client end."""
    server_end, client_end = socket.socketpair()
    context = server_context(pki.cert, pki.key, read_timeout=timeout)
    wrapped = context.wrap_socket(server_end, server_side=True, do_handshake_on_connect=False)
    assert isinstance(wrapped, DeadlineSocket)
    try:
        yield wrapped, client_end
    finally:
        wrapped.close()
        client_end.close()


def client_tls(pki: Pki, raw: socket.socket) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(pki.ca))
    return context.wrap_socket(raw, server_hostname="localhost")


def trickle(tls: ssl.SSLSocket, data: bytes, every: float, stopped: threading.Event) -> None:
    for byte in data:
        if stopped.is_set():
            return
        try:
            tls.send(bytes([byte]))
        except OSError:
            return
        time.sleep(every)


def handshaken(pki: Pki, server: Any, raw: Any) -> Any:
    """Both ends of a connection after the TLS handshake, as a request thread would find them."""
    server.setblocking(True)
    handshake = threading.Thread(target=lambda: server.do_handshake())
    handshake.start()
    tls = client_tls(pki, raw)
    handshake.join()
    return tls


def test_a_client_trickling_bytes_is_cut_off_at_the_deadline(pki: Pki) -> None:
    with connected(pki) as (server, raw):
        tls = handshaken(pki, server, raw)
        stopped = threading.Event()
        # 400 bytes, one every 20 ms: 8 s of trickle (longer than GENEROUS), each byte well inside
        # the timeout, so a per-read timeout alone would never fire.
        sender = threading.Thread(target=trickle, args=(tls, b"x" * 400, 0.02, stopped))
        sender.start()
        started, received = time.monotonic(), 0
        try:
            with pytest.raises(SlowClient) as cut:
                while True:
                    received += len(server.recv(1024))
        finally:
            stopped.set()
            sender.join()
        elapsed = time.monotonic() - started
        assert received > 0, "the client's bytes did arrive: it was cut for being slow, not silent"
        assert TIMEOUT * 0.9 <= elapsed < GENEROUS
        assert cut.value.seconds == TIMEOUT and "within 0.3 s" in str(cut.value)
        # Once cut, the connection reads as closed, so gunicorn drops it without another wait.
        assert server.recv(1024) == b""


def test_the_tls_handshake_counts_against_the_deadline(pki: Pki) -> None:
    with connected(pki) as (server, raw):
        server.setblocking(True)
        raw.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and then nothing
        started = time.monotonic()
        with pytest.raises(SlowClient):
            server.recv(1024)
        assert time.monotonic() - started < GENEROUS


def test_the_deadline_starts_at_the_first_read_and_again_for_each_request(pki: Pki) -> None:
    with connected(pki) as (server, raw):
        tls = handshaken(pki, server, raw)
        tls.sendall(b"first")
        # Waiting for a thread (longer than the timeout) is not the client's fault.
        time.sleep(TIMEOUT * 2)
        assert server.recv(1024) == b"first"
        # gunicorn parks a kept-alive connection (non-blocking) and takes it up again for the next request.
        server.setblocking(False)
        time.sleep(TIMEOUT * 2)
        server.setblocking(True)
        tls.sendall(b"second")
        assert server.recv(1024) == b"second"


def test_end_request_starts_the_next_request_s_deadline_without_leaving_blocking_mode(pki: Pki) -> None:
    """podgate's worker leaves a handshaken socket in timeout mode between requests (server/worker.py)."""
    with connected(pki) as (server, raw):
        tls = handshaken(pki, server, raw)
        server.settimeout(TIMEOUT)
        tls.sendall(b"first")
        assert server.recv(1024) == b"first"
        time.sleep(TIMEOUT * 2)  # idle between requests, longer than a request may take
        server.end_request()
        tls.sendall(b"second")
        assert server.recv(1024) == b"second"


def test_a_request_s_reads_and_its_answer_cost_no_settimeout(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """settimeout is an ioctl in CPython; the reads of a request that arrives at once reuse the timeout."""
    with connected(pki, timeout=GENEROUS) as (server, raw):
        tls = handshaken(pki, server, raw)
        server.settimeout(GENEROUS)  # as the worker leaves it after the handshake
        calls: list[float | None] = []
        original = ssl.SSLSocket.settimeout

        def counted(self: ssl.SSLSocket, value: float | None) -> None:
            calls.append(value)
            original(self, value)

        monkeypatch.setattr(DeadlineSocket, "settimeout", counted)
        for request in (b"one", b"two"):
            for part in (b"head-", request, b"-body"):
                tls.sendall(part)
                assert server.recv(1024) == part
            server.sendall(b"answer")
            assert tls.recv(1024) == b"answer"
            server.end_request()
        assert calls == []


def test_a_slow_read_sets_the_timeout_to_what_is_left(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    with connected(pki) as (server, raw):
        tls = handshaken(pki, server, raw)
        server.settimeout(TIMEOUT)
        tls.sendall(b"first")
        assert server.recv(1024) == b"first"
        time.sleep(TIMEOUT / 2)  # far more than SLACK of the timeout: a read now could overrun the deadline
        tls.sendall(b"more")
        assert server.recv(1024) == b"more"
        assert 0 < (server.gettimeout() or 0) < TIMEOUT / 2 + TIMEOUT * SLACK
        # An answer gets the whole read timeout again, for a client that is slow to read it.
        server.sendall(b"answer")
        assert server.gettimeout() == TIMEOUT


def test_a_connection_without_a_verified_certificate_is_not_a_verified_client(pki: Pki) -> None:
    assert not verified_client(None)
    assert not verified_client(socket.socket())


def test_gunicorn_s_report_of_a_slow_client_becomes_one_warning_line() -> None:
    try:
        raise SlowClient("10.0.0.7:51234", 10.0)
    except SlowClient:
        record = logging.getLogger("gunicorn.error").makeRecord(
            "gunicorn.error", logging.ERROR, __file__, 1, "Socket error processing request.", (), None
        )
        record.exc_info = sys.exc_info()
    assert SlowClientFilter().filter(record)
    line = JsonFormatter().format(record)
    assert '"level":"warning"' in line and '"message":"slow client cut off"' in line
    assert '"peer":"10.0.0.7:51234"' in line and "traceback" not in line


def test_other_records_pass_the_filter_unchanged() -> None:
    record = logging.makeLogRecord({"msg": "Socket error processing request.", "levelno": logging.ERROR})
    assert SlowClientFilter().filter(record)
    assert (record.msg, record.levelno) == ("Socket error processing request.", logging.ERROR)
