"""Real TLS handshakes over 127.0.0.1 with Python's ssl module: SAN hostname checks and client auth."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

import pytest

from tests.pki.support import SERVER_HOSTS, Pki

TIMEOUT = 10.0


@dataclass
class Outcome:
    client_error: BaseException | None = None
    server_error: BaseException | None = None
    received: bytes = b""


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str) -> Outcome:
    """One connection to a thread serving `server_ctx`, which sends b"ok" once its handshake is done."""
    outcome = Outcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(TIMEOUT)
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                outcome.server_error = exc

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                outcome.received = tls.recv(2)
        except (ssl.SSLError, OSError) as exc:
            outcome.client_error = exc
        finally:
            thread.join(TIMEOUT)
    assert not thread.is_alive()
    return outcome


def server_context(pki: Pki, name: str = "server", require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.path(f"{name}.pem"), pki.path(f"{name}-key.pem"))
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.path("ca.pem"))
    return ctx


def client_context(pki: Pki, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.path("ca.pem")))
    # Strict RFC 5280 checks (AKI present, critical basicConstraints on the CA, ...), as Go's verifier has.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if cert is not None:
        ctx.load_cert_chain(pki.path(f"{cert}.pem"), pki.path(f"{cert}-key.pem"))
    return ctx


@pytest.mark.parametrize("host", SERVER_HOSTS)
def test_hostname_verification_passes_for_every_san(pki: Pki, host: str) -> None:
    outcome = handshake(server_context(pki), client_context(pki), host)
    assert outcome.client_error is None and outcome.server_error is None
    assert outcome.received == b"ok"


@pytest.mark.parametrize("host", ["evil.example", "podgate.other.svc", "127.0.0.2", "svc"])
def test_hostname_verification_fails_outside_the_sans(pki: Pki, host: str) -> None:
    outcome = handshake(server_context(pki), client_context(pki), host)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert outcome.client_error.verify_message.startswith(("Hostname mismatch", "IP address mismatch"))
    assert outcome.received == b""


@pytest.mark.parametrize("client", ["client", "peer"])
def test_client_and_peer_certs_authenticate_to_a_server_requiring_them(pki: Pki, client: str) -> None:
    outcome = handshake(
        server_context(pki, require_client_cert=True), client_context(pki, client), "localhost"
    )
    assert outcome.client_error is None and outcome.server_error is None
    assert outcome.received == b"ok"


def test_peer_cert_also_serves(pki: Pki) -> None:
    outcome = handshake(server_context(pki, "peer"), client_context(pki), "peer-0.podgate")
    assert outcome.client_error is None and outcome.received == b"ok"


def test_server_cert_is_refused_as_a_client_cert(pki: Pki) -> None:
    outcome = handshake(
        server_context(pki, require_client_cert=True), client_context(pki, "server"), "localhost"
    )
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert "unsuitable certificate purpose" in str(outcome.server_error)
    assert outcome.received == b""


def test_no_client_cert_is_refused_when_required(pki: Pki) -> None:
    outcome = handshake(server_context(pki, require_client_cert=True), client_context(pki), "localhost")
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert outcome.received == b""


def test_client_cert_cannot_serve(pki: Pki) -> None:
    outcome = handshake(server_context(pki, "client"), client_context(pki), "localhost")
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
