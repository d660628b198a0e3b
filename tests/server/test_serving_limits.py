"""What a hostile or broken client can do to a real `podgate serve`: hold its threads with slow
requests, send what the engine cannot judge, or hope to find its secrets in the log."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

READ_TIMEOUT = 1.0
THREADS = 2
WORKERS = 2
# Each slow client would take this long to finish; the server must cut it off long before.
TRICKLE_SECONDS = 30.0
# A normal review queued behind slow clients waits for them to be cut (a few READ_TIMEOUTs);
# anything under this bound proves they were, with room for a slow CI machine.
ANSWER_BOUND = 15.0


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    with serve(
        pinned_policies(workdir / "policies"),
        pki,
        workdir,
        workers=WORKERS,
        args=["--threads", str(THREADS), "--read-timeout", str(READ_TIMEOUT)],
    ) as running:
        yield running


@dataclass
class Trickle:
    """One slow client: its bytes, sent one at a time; what it got back, and when the server cut it."""

    preamble: bytes
    payload: bytes
    tls: bool = True
    answer: bytes = b""
    cut_after: float | None = None
    errors: list[str] = field(default_factory=list)

    def run(self, server: Server, stop: threading.Event) -> None:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TRICKLE_SECONDS)
        sock = client_context(server.ca).wrap_socket(raw, server_hostname="127.0.0.1") if self.tls else raw
        sock.sendall(self.preamble)
        # Non-blocking from here: looking for the server's answer must never wait.
        sock.setblocking(False)
        every = TRICKLE_SECONDS / len(self.payload)
        started = time.monotonic()
        closed = False
        try:
            for byte in self.payload:
                closed = self._closed_by_server(sock)
                if closed or stop.is_set():
                    break
                sock.send(bytes([byte]))
                time.sleep(every)
        except OSError as error:  # ssl.SSLError included
            self.errors.append(repr(error))
            closed = True
        if closed:
            self.cut_after = time.monotonic() - started
        sock.close()

    def _closed_by_server(self, sock: socket.socket) -> bool:
        """Reads whatever the server has sent; True once it has closed the connection."""
        try:
            while chunk := sock.recv(4096):
                self.answer += chunk
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True
        return True


def test_slow_clients_are_cut_off_and_do_not_starve_a_normal_review(server: Server) -> None:
    body = b"{" + b" " * 600 + b"}"
    headers = (
        f"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    # More slow clients than the server has request threads, three kinds of slow.
    slow = (
        [Trickle(b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"p" * 600) for _ in range(4)]
        + [Trickle(headers, body) for _ in range(4)]
        + [Trickle(b"", client_hello(server), tls=False) for _ in range(2)]
    )
    assert len(slow) > WORKERS * THREADS
    stop = threading.Event()
    threads = [threading.Thread(target=t.run, args=(server, stop), daemon=True) for t in slow]
    for thread in threads:
        thread.start()
    try:
        time.sleep(READ_TIMEOUT / 2)  # every slow client has sent its first bytes and holds a thread
        started = time.monotonic()
        status, answer = server.post_review("/mutate", fixture_files("mutate")[0].read_bytes())
        waited = time.monotonic() - started
        assert status == 200 and answer["response"]["allowed"] is True
        assert waited < ANSWER_BOUND
        for thread in threads:
            thread.join(timeout=ANSWER_BOUND)
    finally:
        stop.set()
    assert all(t.cut_after is not None and t.cut_after < ANSWER_BOUND for t in slow), [
        (t.preamble[:20], t.cut_after, t.errors) for t in slow
    ]
    # A client cut off in its body gets a 408 before the connection is closed.
    assert [t.answer.split(b"\r\n", 1)[0] for t in slow if t.preamble] == [
        b"HTTP/1.1 408 REQUEST TIMEOUT"
    ] * 4

    def settled() -> list[dict[str, Any]]:
        deadline = time.monotonic() + ANSWER_BOUND
        while True:
            lines = server.log_lines()
            cut = [line for line in lines if line.get("message") == "slow client cut off"]
            if len(cut) >= 6 or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)

    lines = settled()
    # Cut in headers or handshake: one warning each, with the peer; in the body: the 408's own line.
    assert len([line for line in lines if line.get("message") == "slow client cut off"]) == 6
    timeouts = [line for line in lines if line.get("message") == "rejected" and line.get("status") == 408]
    assert len(timeouts) == 4
    assert not [line for line in lines if "traceback" in line or line.get("level") == "error"]


def test_connections_reset_before_their_first_byte_do_not_kill_a_worker(server: Server) -> None:
    deadline = time.monotonic() + ANSWER_BOUND
    while len(server.workers()) < WORKERS:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    workers = server.workers()
    for _ in range(20):
        client = socket.create_connection(("127.0.0.1", server.port))
        # Linger 0: close() sends a reset instead of a FIN.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    time.sleep(1.0)
    assert server.request("GET", "/healthz")[0] == 200
    assert server.workers() == workers
    assert not [line for line in server.log_lines() if line.get("message") == "Exception in worker process"]


def secret_review(secret: str, phase: str) -> bytes:
    review: dict[str, Any] = json.loads(fixture_files(phase)[0].read_text())
    pod = review["request"]["object"]
    pod["metadata"].setdefault("annotations", {})["example.com/token"] = secret
    for container in pod["spec"]["containers"]:
        container["env"] = [{"name": "API_TOKEN", "value": secret}]
        container["image"] = "registry.example/do-not-log:1"
    return json.dumps(review).encode()


def test_env_values_annotations_and_objects_never_reach_the_log(server: Server) -> None:
    secret = f"s3cr3t-{uuid.uuid4()}"
    for phase in ("mutate", "validate"):
        body = secret_review(secret, phase)
        status, _ = server.post_review(f"/{phase}", body)
        assert status == 200
        # The same object in a review that is rejected (no uid) is not logged either.
        broken = json.loads(body)
        del broken["request"]["uid"]
        assert server.request("POST", f"/{phase}", json.dumps(broken).encode(), APISERVER_HEADERS)[0] == 400
    time.sleep(0.5)  # let the workers' log lines land
    log = server.log.read_text()
    assert '"message":"admission"' in log
    assert secret not in log
    assert "do-not-log" not in log and '"containers"' not in log and '"spec"' not in log


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\xff\xfe not utf-8", 400),
        (b"[1, 2]", 400),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": 7}', 400),
        (b"[" * 2000 + b"]" * 2000, 400),
        (b'{"a": 1e999999}', 400),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": 5}}', 400),
    ],
    ids=["not-utf8", "array", "request-not-object", "too-deep-to-parse", "huge-number", "uid-not-string"],
)
def test_error_answers_say_what_is_wrong_and_nothing_about_podgate(
    server: Server, body: bytes, status: int
) -> None:
    for path in ("/mutate", "/validate"):
        got, headers, data = server.request("POST", path, body, APISERVER_HEADERS)
        assert (got, headers["content-type"]) == (status, "application/json")
        answer = json.loads(data)
        assert list(answer) == ["error"]
        for internal in ("Traceback", 'File "', "webhook", "object at 0x", "<class", "Error:"):
            assert internal not in answer["error"], answer


def test_an_object_too_deep_to_judge_is_the_sender_s_400(server: Server, tmp_path: Path) -> None:
    review: dict[str, Any] = json.loads(fixture_files("mutate")[0].read_text())
    nested: dict[str, Any] = {}
    review["request"]["object"]["metadata"]["annotations"] = {"x": "y"}
    review["request"]["object"]["spec"]["deep"] = nested
    for _ in range(300):
        nested["n"] = {}
        nested = nested["n"]
    status, _, data = server.request("POST", "/mutate", json.dumps(review).encode(), APISERVER_HEADERS)
    assert status == 400 and json.loads(data)["error"].startswith("request.object cannot be judged")
