"""The TLS podgate speaks, and sockets a slow client cannot hold.

gunicorn asks for a context for every connection it accepts and wraps the socket without a
handshake. A blocking read on it waits for as long as the client likes: a client that sends a byte
now and then (a slowloris) keeps a request thread, and a few such clients keep them all. The sockets
made here give each request a deadline instead: from the first read for a request (the TLS handshake
included, when gunicorn's own gthread worker does it in that read) to its last body byte, the client
has `read_timeout` seconds. podgate's worker (webhook/server/worker.py) does the handshake without a
thread and hands a connection to one only once request bytes are there.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# What the kube-apiserver (Go's crypto/tls) and every current client offer: TLS 1.2 only with
# forward-secret key exchange and AEAD ciphers. TLS 1.3 suites are all AEAD and are left as they are.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# The apiserver sends a whole review at once, in milliseconds; see docs/server.md for the choice.
DEFAULT_READ_TIMEOUT = 10.0
# Each settimeout() is a system call (an ioctl): a read may start with the timeout set by an earlier
# one, and so end at most this share of the read timeout past the deadline (0.1 s of 10 s).
SLACK = 0.01


class SlowClient(TimeoutError):
    """A client did not deliver a whole request within the read timeout; its connection is finished."""

    def __init__(self, peer: str, seconds: float) -> None:
        super().__init__(f"{peer} did not send a whole request within {seconds:g} s")
        self.peer = peer
        self.seconds = seconds


class DeadlineSocket(ssl.SSLSocket):
    """An SSLSocket whose reads share one deadline per request.

    A request starts with its first read and ends with `end_request()`, which podgate's worker calls
    after each response; gunicorn's gthread worker calls `setblocking(False)` when it parks a kept-alive
    connection between requests, which ends it too. The deadline is armed by the first read, not at
    hand-over, so time spent queued for a busy thread is not charged to the client.
    """

    # Class-level defaults: SSLContext.wrap_socket builds these without calling __init__.
    _deadline: float | None = None
    _expired = False
    _seconds: float | None = None

    def setblocking(self, flag: bool) -> None:
        super().setblocking(flag)
        if not flag:
            self._deadline = None

    def end_request(self) -> None:
        """The request is answered: the next read starts the next request's deadline."""
        self._deadline = None

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        timeout = self.gettimeout()
        if timeout == 0.0:
            return self._probe(buflen, flags)
        if self._expired:
            # Overran once: read as closed, so gunicorn drops the connection quietly.
            return b""
        seconds = self._read_timeout()
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + seconds
        remaining = self._deadline - now
        if remaining > 0:
            # One timeout for the whole call: CPython's SSL read counts it as a deadline across its
            # waits, the handshake included. Set anew only when the one set before could carry this
            # read more than SLACK past the deadline: a request's reads then cost no ioctl.
            if timeout is None or timeout > remaining + seconds * SLACK:
                self.settimeout(remaining)
            try:
                return super().recv(buflen, flags)
            except TimeoutError:
                pass
        self._expired = True
        raise SlowClient(self._peer(), seconds)

    def _probe(self, buflen: int, flags: int) -> bytes:
        """A non-blocking read: it never waits for the client, so it needs no deadline.

        gunicorn never reads a parked connection; the one non-blocking read is SSLSocket's own,
        while wrapping a connection that is no longer connected (the client reset it before its
        first byte was read). SSLSocket lets that ECONNRESET out of the constructor, which gunicorn
        calls in the worker's main loop, where any exception kills the worker and every request in
        it (gunicorn issue #3306): one reset from anyone would do. Here it reads as closed, and
        the request thread then finds the connection gone and drops it.
        """
        try:
            return super().recv(buflen, flags)
        except BlockingIOError:
            raise
        except OSError:
            return b""

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        # Responses are a few KiB and fit the socket buffer; this only bounds a client that never reads,
        # with the read timeout give or take SLACK (the timeout the reads left is usually that already).
        seconds = self._read_timeout()
        timeout = self.gettimeout()
        if timeout is None or not seconds * (1 - SLACK) <= timeout <= seconds:
            self.settimeout(seconds)
        super().sendall(data, flags)

    def _read_timeout(self) -> float:
        if self._seconds is None:
            context = self.context
            self._seconds = (
                context.read_timeout if isinstance(context, WebhookContext) else DEFAULT_READ_TIMEOUT
            )
        return self._seconds

    def _peer(self) -> str:
        try:
            address = self.getpeername()
        except OSError:
            return "unknown peer"
        if isinstance(address, tuple) and len(address) >= 2:
            return f"{address[0]}:{address[1]}"
        return str(address) or "unknown peer"


class WebhookContext(ssl.SSLContext):
    """A server context whose sockets are DeadlineSockets with its read timeout."""

    sslsocket_class = DeadlineSocket
    read_timeout = DEFAULT_READ_TIMEOUT


def server_context(
    cert: Path, key: Path, *, client_ca: Path | None = None, read_timeout: float = DEFAULT_READ_TIMEOUT
) -> WebhookContext:
    """TLS 1.2 or newer, ECDHE + AEAD for TLS 1.2, HTTP/1.1 over ALPN; client certificates if asked.

    With `client_ca`, a client that presents a certificate must present one that chains to it
    (anything else fails the handshake), but presenting none is allowed: kubelet probes cannot,
    so the server decides per path (serving.ClientCertificateGate). Only `client_ca` is trusted for
    clients, never the system's CA store.
    """
    context = WebhookContext(ssl.PROTOCOL_TLS_SERVER)
    context.read_timeout = read_timeout
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    # Client-initiated renegotiation costs the server a handshake per request of the client's choosing.
    context.options |= ssl.OP_NO_RENEGOTIATION
    for path in (cert, key):
        path.stat()  # OpenSSL's own error for a missing file does not say which file
    context.load_cert_chain(certfile=cert, keyfile=key)
    if client_ca is not None:
        _load_client_ca(context, client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load_client_ca(context: ssl.SSLContext, path: Path) -> None:
    """Trust the CA certificates in `path` (PEM) for clients; every failure names the file."""
    try:
        context.load_verify_locations(cadata=path.read_bytes().decode("ascii"))
    except (UnicodeDecodeError, ValueError, ssl.SSLError) as error:
        raise ValueError(f"{path}: not a PEM CA bundle ({error})") from None


def verified_client(sock: object) -> bool:
    """Whether `sock` is a TLS connection whose client presented a certificate that was verified."""
    if not isinstance(sock, ssl.SSLSocket):
        return False
    try:
        # An empty dict means a certificate that was not validated; None means none was presented.
        return bool(sock.getpeercert())
    except (ValueError, OSError):
        return False
