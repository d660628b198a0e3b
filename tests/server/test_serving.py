"""`podgate serve` for real: gunicorn over TLS on a loopback port, and a client that verifies the chain."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serving_support import (
    APISERVER_HEADERS,
    REPO,
    Pki,
    Server,
    client_context,
    fixture_files,
    labelled_pod_review,
    patched_cpu,
    pinned_policies,
    scrape,
    serve,
    served_digests,
    write_pki,
)
from webhook import evaluate, load_policies
from webhook.server.review import Phase, parse_review, response

pytestmark = pytest.mark.serving

POLICIES = REPO / "policies"
# How long a change may take to reach every worker before the test gives up (they poll every 0.2 s here).
PICKUP_DEADLINE = 20.0


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(POLICIES, pki, tmp_path_factory.mktemp("serve")) as running:
        yield running


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PICKUP_DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"not within {PICKUP_DEADLINE}s: {what}"
        time.sleep(0.1)


def test_every_fixture_gets_the_engines_answer_over_one_kept_alive_connection(server: Server) -> None:
    policies = load_policies(POLICIES)
    before = scrape(server)
    conn = server.connect()
    conn.connect()
    socket_used = conn.sock
    sent: Counter[str] = Counter()
    for fixture in fixture_files():
        phase: Phase = "mutate" if "_mutate_" in fixture.name else "validate"
        body = fixture.read_bytes()
        review = parse_review(body)

        status, answer = server.post_review(f"/{phase}?timeout=10s", body, conn)

        assert status == 200, fixture.name
        assert answer == response(
            review, evaluate(policies, review.raw_request, validating=phase == "validate"), phase
        ), fixture.name
        assert conn.sock is socket_used, "the server closed a kept-alive connection"
        sent[f'endpoint="{phase}",kind="{review.request.kind}",operation="{review.request.operation}"'] += 1
    conn.close()

    after = scrape(server)
    counted: Counter[str] = Counter()
    for name, value in after.items():
        if name.startswith("podgate_admission_requests_total{"):
            labels = re.sub(r',result="[^"]*"', "", name[name.index("{") + 1 : -1])
            counted[labels] += int(value - before.get(name, 0))
    assert +counted == sent


def test_each_admission_is_one_json_log_line(server: Server) -> None:
    review = json.loads(fixture_files("validate")[0].read_text())
    uid = review["request"]["uid"] = "3b0c1e2a-0000-4000-8000-log-line-test"
    _, answer = server.post_review("/validate", json.dumps(review).encode())
    decision = "allowed" if answer["response"]["allowed"] else "denied"
    eventually(lambda: any(line.get("uid") == uid for line in server.log_lines()), "the admission log line")
    (line,) = [line for line in server.log_lines() if line.get("uid") == uid]
    assert (line["message"], line["endpoint"], line["decision"]) == ("admission", "validate", decision)


def test_a_client_that_does_not_trust_the_ca_is_refused(server: Server, tmp_path: Path) -> None:
    stranger = write_pki(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        server.request("GET", "/healthz", conn=server.connect(ca=stranger.ca))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_2_is_the_minimum(server: Server) -> None:
    def version(lowest: ssl.TLSVersion, highest: ssl.TLSVersion) -> str | None:
        context = client_context(server.ca)
        # Let the client offer the old versions: refusing them must be the server's doing.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version, context.maximum_version = lowest, highest
        raw = socket.create_connection(("127.0.0.1", server.port))
        with raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.version()

    assert version(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert version(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"
    with pytest.raises(ssl.SSLError) as refused:
        version(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    assert (
        refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"
    )  # the server's alert, not a client-side limit


@pytest.mark.parametrize(
    ("cipher", "accepted"),
    [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", True),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
        # CBC with HMAC: Python's default server ciphers allow it; podgate's do not.
        ("ECDHE-ECDSA-AES128-SHA256", False),
        ("ECDHE-ECDSA-AES256-SHA", False),
    ],
)
def test_tls_1_2_takes_only_ecdhe_with_an_aead_cipher(server: Server, cipher: str, accepted: bool) -> None:
    context = client_context(server.ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(f"{cipher}:@SECLEVEL=0")
    raw = socket.create_connection(("127.0.0.1", server.port))
    with raw:
        if accepted:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert (tls.cipher() or ("",))[0] == cipher
        else:
            with pytest.raises(ssl.SSLError) as refused:
                context.wrap_socket(raw, server_hostname="127.0.0.1")
            # The server's alert: it found no cipher in common.
            assert refused.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_there_is_no_plaintext_http(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := raw.recv(4096):
                answer += chunk
    # Whatever comes back (a TLS alert, or nothing) is not HTTP.
    assert not answer.startswith(b"HTTP/") and b"alive" not in answer


def test_probes(server: Server) -> None:
    assert server.request("GET", "/healthz")[0] == 200
    status, _, body = server.request("GET", "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True, "policySet": load_policies(POLICIES).digest})


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b"{", APISERVER_HEADERS, 400, "body is not valid JSON: "),
        (b'{"kind": "Pod"}', APISERVER_HEADERS, 400, "kind must be AdmissionReview (got 'Pod')"),
        (
            b"{}",
            {"Content-Type": "text/plain"},
            415,
            "Content-Type must be application/json (got 'text/plain')",
        ),
        (b"{" + b" " * (8 * 1024 * 1024) + b"}", APISERVER_HEADERS, 413, "the limit is 8388608"),
    ],
    ids=["malformed", "not-a-review", "wrong-type", "oversized"],
)
def test_bad_bodies_get_a_status_and_a_reason(
    server: Server, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    got, reply_headers, data = server.request("POST", "/mutate", body, headers)
    assert got == status
    assert reply_headers["content-type"] == "application/json"
    assert error in json.loads(data)["error"]


def test_a_chunked_body_over_the_limit_is_refused_while_reading(server: Server) -> None:
    conn = server.connect()
    chunks = (b"x" * (1024 * 1024) for _ in range(9))
    conn.request("POST", "/mutate", body=chunks, headers=APISERVER_HEADERS, encode_chunked=True)
    reply = conn.getresponse()
    assert (reply.status, json.loads(reply.read())) == (
        413,
        {"error": "body is over the limit of 8388608 bytes"},
    )
    conn.close()


def test_policy_changes_reach_every_worker_and_broken_ones_never_do(pki: Pki, tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    pinned_policies(policy_dir)
    original = load_policies(policy_dir).digest
    with serve(policy_dir, pki, tmp_path, workers=2) as server:
        eventually(lambda: len(served_digests(server)) == 2, "both workers report their policy set")

        (policy_dir / "broken.yaml").write_text(
            "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata:\n  name: broken\nspec:\n"
            "  rules:\n    - name: oops\n      resources: {defaults: {cpu: {request: lots}}}\n"
        )
        eventually(
            lambda: scrape(server).get('podgate_policy_reloads_total{result="error"}') == 2,
            "both workers count the failed reload",
        )
        status, _, body = server.request("GET", "/readyz")
        assert (status, json.loads(body)["policySet"]) == (200, original)
        assert set(served_digests(server).values()) == {original}
        # One series across the workers, not one per pid: max, so any worker failing shows.
        assert scrape(server)["podgate_policy_reload_failing"] == 1
        problems = [
            line["problems"]
            for line in server.log_lines()
            if line.get("message", "").startswith("policies did")
        ]
        assert problems and problems[0] == [
            f"{policy_dir}/broken.yaml:8: spec.rules[0].resources.defaults.cpu.request: "
            "must be a quantity such as 100m or 256Mi (got 'lots')"
        ]
        review = labelled_pod_review()
        assert cpu_patched(server, review) == "100m"

        (policy_dir / "broken.yaml").unlink()
        text = (policy_dir / "resources.yaml").read_text()
        (policy_dir / "resources.yaml").write_text(
            text.replace("request: 100m", "request: 200m", 1).replace("limit: 100m", "limit: 200m", 1)
        )
        changed = load_policies(policy_dir).digest
        eventually(
            lambda: set(served_digests(server).values()) == {changed}, "every worker serves the change"
        )
        assert cpu_patched(server, review) == "200m"
        metrics = scrape(server)
        assert metrics["podgate_policy_reload_failing"] == 0
        # The set no longer served leaves no series behind, in any worker's file.
        assert not [name for name in metrics if original in name]
        assert 0 < time.time() - metrics["podgate_policy_last_success_timestamp_seconds"] < 60


def cpu_patched(server: Server, body: bytes) -> str | None:
    status, _, data = server.request("POST", "/mutate", body, APISERVER_HEADERS)
    return patched_cpu(status, data)


def test_a_rotated_certificate_is_served_without_a_restart(pki: Pki, tmp_path: Path) -> None:
    own = write_pki(tmp_path / "tls")
    with serve(POLICIES, own, tmp_path, workers=2) as server:
        kept = server.connect()
        assert server.request("GET", "/healthz", conn=kept)[0] == 200

        rotated = write_pki(tmp_path / "rotated")
        shutil.copy(rotated.key, own.key)
        shutil.copy(rotated.cert, own.cert)

        def new_connections_trust_only_the_new_ca() -> bool:
            try:
                server.request("GET", "/healthz", conn=server.connect(ca=rotated.ca))
            except ssl.SSLCertVerificationError:
                return False
            return True

        eventually(new_connections_trust_only_the_new_ca, "new connections get the rotated certificate")
        # The connection opened before the rotation carries on with the certificate it was given.
        assert server.request("GET", "/healthz", conn=kept)[0] == 200
        kept.close()


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(pki: Pki, tmp_path: Path) -> None:
    bodies = [f.read_bytes() for f in fixture_files("mutate")[:4]]
    with serve(POLICIES, pki, tmp_path, workers=2) as server:
        connections = []
        for body in bodies:
            conn = server.connect()
            conn.putrequest("POST", "/mutate?timeout=10s")
            for name, value in {**APISERVER_HEADERS, "Content-Length": str(len(body))}.items():
                conn.putheader(name, value)
            conn.endheaders(body[: len(body) // 2])
            connections.append(conn)
        # Let the workers pick the half-sent requests up before the signal arrives.
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        answers = []
        for conn, body in zip(connections, bodies, strict=True):
            conn.send(body[len(body) // 2 :])
            reply = conn.getresponse()
            answers.append((reply.status, json.loads(reply.read())["response"]["uid"]))
            conn.close()
        assert answers == [(200, parse_review(body).uid) for body in bodies]
        assert server.process.wait(timeout=60) == 0
        with pytest.raises(OSError):
            server.request("GET", "/healthz")
