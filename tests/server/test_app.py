"""The Flask app: the engine's decisions, 400/413/415 with reasons, the fail mode, probes, metrics, logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.serving_support import APISERVER_HEADERS, REPO, fixture_files, pinned_policies
from webhook import evaluate
from webhook.server.app import ReviewRoutes, create_app
from webhook.server.logs import JsonFormatter
from webhook.server.metrics import Metrics
from webhook.server.reload import PolicySource
from webhook.server.review import Phase, parse_review, response
from webhook.server.settings import Settings

POLICIES = REPO / "policies"
LOG_FIELDS = {
    "uid",
    "endpoint",
    "kind",
    "namespace",
    "name",
    "generateName",
    "operation",
    "user",
    "dryRun",
    "decision",
    "policies",
    "patchOps",
    "warnings",
    "durationMs",
}


def polled(path: Path) -> PolicySource:
    policies = PolicySource(path)
    assert policies.poll() is not None and policies.healthy()
    return policies


@pytest.fixture(scope="module")
def shipped() -> PolicySource:
    """The policies in the repository, whatever they are: the engine is the oracle."""
    return polled(POLICIES)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> PolicySource:
    """A fixed policy set, for tests that name policies, rules and counts."""
    return polled(pinned_policies(tmp_path_factory.mktemp("policies")))


def make_app(source: PolicySource, **settings: Any) -> Flask:
    return create_app(source, replace(Settings(), **settings), metrics=Metrics())


@pytest.fixture
def client(source: PolicySource) -> Iterator[FlaskClient]:
    yield make_app(source).test_client()


def post(client: FlaskClient, path: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    reply = client.post(path, data=body, headers={**APISERVER_HEADERS, **headers})
    assert reply.content_type == "application/json"
    return reply.status_code, json.loads(reply.data)


@pytest.mark.parametrize("fixture", fixture_files(), ids=lambda f: f.name[:4])
def test_every_fixture_gets_the_engines_answer(shipped: PolicySource, fixture: Path) -> None:
    client = make_app(shipped).test_client()
    phase: Phase = "mutate" if "_mutate_" in fixture.name else "validate"
    body = fixture.read_bytes()
    review = parse_review(body)
    policies = shipped.current()
    assert policies is not None

    status, answer = post(client, f"/{phase}?timeout=10s", body)

    assert status == 200
    assert answer == response(
        review, evaluate(policies, review.raw_request, validating=phase == "validate"), phase
    )


def fixture_body(prefix: str) -> dict[str, Any]:
    (match,) = [f for f in fixture_files() if f.name.startswith(prefix)]
    review: dict[str, Any] = json.loads(match.read_text())
    return review


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b"{not json",
            "body is not valid JSON: unexpected character, expected a string key: line 1 column 2 (char 1)",
        ),
        (b"[]", "body must be a JSON object (an AdmissionReview)"),
        (b'{"kind": "Pod", "apiVersion": "v1"}', "kind must be AdmissionReview (got 'Pod')"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request is missing"),
    ],
    ids=["malformed-json", "array", "not-a-review", "no-request"],
)
def test_a_malformed_body_is_a_400_that_says_what_is_wrong(
    client: FlaskClient, body: bytes, error: str
) -> None:
    assert post(client, "/mutate", body) == (400, {"error": error})


@pytest.mark.parametrize(
    ("member", "error"), [("uid", "request.uid is missing"), ("object", "request.object is missing")]
)
def test_a_review_missing_a_member_is_a_400_naming_it(client: FlaskClient, member: str, error: str) -> None:
    review = fixture_body("0011")
    del review["request"][member]
    assert post(client, "/validate", json.dumps(review).encode()) == (400, {"error": error})


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Content-Type": "text/plain"}, "Content-Type must be application/json (got 'text/plain')"),
        ({"Content-Type": ""}, "Content-Type must be application/json (got 'none')"),
        (
            {"Content-Type": "application/yaml"},
            "Content-Type must be application/json (got 'application/yaml')",
        ),
        ({"Content-Encoding": "gzip"}, "Content-Encoding 'gzip' is not supported"),
    ],
    ids=["text", "missing", "yaml", "gzip-body"],
)
def test_a_wrongly_typed_body_is_a_415(client: FlaskClient, headers: dict[str, str], error: str) -> None:
    assert post(client, "/mutate", json.dumps(fixture_body("0011")).encode(), **headers) == (
        415,
        {"error": error},
    )


def test_json_with_a_charset_is_json(client: FlaskClient) -> None:
    body = json.dumps(fixture_body("0011")).encode()
    status, _ = post(client, "/mutate", body, **{"Content-Type": "application/json; charset=utf-8"})
    assert status == 200


def test_two_3_mib_objects_fit_the_default_limit(client: FlaskClient) -> None:
    review = fixture_body("0035")  # an UPDATE: object and oldObject
    padding = "x" * (3 * 1024 * 1024)
    review["request"]["object"]["metadata"]["annotations"] = {"example.com/big": padding}
    review["request"]["oldObject"]["metadata"]["annotations"] = {"example.com/big": padding}
    status, answer = post(client, "/validate", json.dumps(review).encode())
    assert status == 200 and answer["response"]["uid"] == review["request"]["uid"]


def test_a_body_over_the_limit_is_a_413_by_its_content_length(source: PolicySource) -> None:
    client = make_app(source, max_body_bytes=2048).test_client()
    body = json.dumps(fixture_body("0011")).encode()
    assert len(body) > 2048
    assert post(client, "/mutate", body) == (413, {"error": f"body is {len(body)} bytes; the limit is 2048"})


def test_a_chunked_body_over_the_limit_is_a_413_while_reading(source: PolicySource) -> None:
    client = make_app(source, max_body_bytes=2048).test_client()
    body = json.dumps(fixture_body("0011")).encode()
    # No Content-Length: the server learns the size only by reading (gunicorn sets input_terminated).
    reply = client.post(
        "/mutate",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert (reply.status_code, reply.json) == (413, {"error": "body is over the limit of 2048 bytes"})


def test_a_chunked_body_within_the_limit_is_read_whole(client: FlaskClient) -> None:
    body = json.dumps(fixture_body("0011")).encode()
    reply = client.post(
        "/mutate",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert reply.status_code == 200 and reply.json is not None
    assert reply.json["response"]["uid"] == fixture_body("0011")["request"]["uid"]


def explode(*args: object, **kwargs: object) -> object:
    raise ZeroDivisionError("a bug in a rule")


@pytest.mark.parametrize("phase", ["mutate", "validate"])
def test_fail_mode_admit_allows_with_a_warning(
    source: PolicySource, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, phase: str
) -> None:
    monkeypatch.setattr("webhook.server.app.evaluate_request", explode)
    client = make_app(source, fail_mode="admit").test_client()
    review = fixture_body("0011")
    uid = review["request"]["uid"]
    with caplog.at_level(logging.INFO, logger="podgate"):
        status, answer = post(client, f"/{phase}", json.dumps(review).encode())
    assert status == 200
    assert answer["response"] == {
        "uid": uid,
        "allowed": True,
        "warnings": ["podgate could not evaluate this request; fail mode admit"],
    }
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.podgate_fields == {"uid": uid, "endpoint": phase}  # type: ignore[attr-defined]
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], ZeroDivisionError)


def test_fail_mode_deny_refuses_with_an_internal_error(
    source: PolicySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webhook.server.app.evaluate_request", explode)
    client = make_app(source, fail_mode="deny").test_client()
    review = fixture_body("0012")
    status, answer = post(client, "/validate", json.dumps(review).encode())
    assert status == 200
    assert answer["response"] == {
        "uid": review["request"]["uid"],
        "allowed": False,
        "status": {
            "code": 500,
            "reason": "InternalError",
            "message": "podgate could not evaluate this request; fail mode deny",
        },
    }


def test_without_a_policy_set_every_review_meets_the_fail_mode(tmp_path: Path) -> None:
    empty = PolicySource(tmp_path / "never-loaded")
    client = make_app(empty, fail_mode="deny").test_client()
    status, answer = post(client, "/mutate", json.dumps(fixture_body("0011")).encode())
    assert status == 200 and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"] == (
        "podgate could not evaluate this request; fail mode deny"
    )


def test_an_unexpected_error_before_the_review_is_parsed_is_a_json_500(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webhook.server.app.parse_review", explode)
    reply = client.post("/mutate", data=b"{}", headers=APISERVER_HEADERS)
    assert (reply.status_code, reply.json) == (500, {"error": "internal error; see the server log"})
    assert b"Traceback" not in reply.data and b"ZeroDivisionError" not in reply.data


def test_unknown_paths_and_methods_answer_json(client: FlaskClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.content_type == "application/json"
    wrong = client.get("/mutate")
    assert wrong.status_code == 405 and wrong.json == {
        "error": "The method is not allowed for the requested URL."
    }


def test_healthz_says_the_process_is_alive(client: FlaskClient) -> None:
    reply = client.get("/healthz")
    assert (reply.status_code, reply.json) == (200, {"status": "alive"})


def test_readyz_reports_the_policy_set(client: FlaskClient, source: PolicySource) -> None:
    reply = client.get("/readyz")
    assert source.current() is not None
    assert (reply.status_code, reply.json) == (200, {"ready": True, "policySet": source.current().digest})  # type: ignore[union-attr]


def test_readyz_is_503_until_policies_and_certificate_are_loaded(tmp_path: Path) -> None:
    from webhook.server.reload import CertificateSource

    certificates = CertificateSource(tmp_path / "absent.pem", tmp_path / "absent-key.pem")
    app = create_app(
        PolicySource(tmp_path / "absent"), Settings(), metrics=Metrics(), certificates=certificates
    )
    reply = app.test_client().get("/readyz")
    assert reply.status_code == 503
    assert reply.json == {
        "ready": False,
        "policySet": None,
        "problems": ["no policy set loaded", "no TLS certificate loaded"],
    }


def metric_lines(client: FlaskClient) -> set[str]:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.content_type.startswith("text/plain")
    return {line for line in reply.get_data(as_text=True).splitlines() if not line.startswith("#")}


def test_metrics_count_requests_mutations_violations_and_rejections(client: FlaskClient) -> None:
    # 0001/0002: a bare pod outside test namespaces: unchanged by mutation, denied for missing requests.
    post(client, "/mutate", fixture_files()[0].read_bytes())
    post(client, "/validate", fixture_files()[1].read_bytes())
    post(client, "/validate", b"{}")
    lines = metric_lines(client)
    requests = "podgate_admission_requests_total"
    assert {
        requests + '{endpoint="mutate",kind="Pod",operation="CREATE",result="unchanged"} 1.0',
        requests + '{endpoint="validate",kind="Pod",operation="CREATE",result="denied"} 1.0',
        requests + '{endpoint="validate",kind="",operation="",result="invalid"} 1.0',
        'podgate_violations_total{action="enforce",policy="requests-required",rule="cpu-and-memory"} 1.0',
        'podgate_admission_duration_seconds_count{endpoint="mutate"} 1.0',
        'podgate_admission_duration_seconds_count{endpoint="validate"} 2.0',
    } <= lines


def test_a_mutation_is_counted_by_policy_and_rule(client: FlaskClient) -> None:
    review = fixture_body("0001")
    review["request"]["object"]["metadata"]["labels"] = {"app.kubernetes.io/env": "test"}
    status, answer = post(client, "/mutate", json.dumps(review).encode())
    assert status == 200 and "patch" in answer["response"]
    assert 'podgate_mutations_total{policy="test-defaults",rule="guaranteed-resources"} 1.0' in metric_lines(
        client
    )


def test_one_json_log_line_per_admission_with_no_object_in_it(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = fixture_files()[1].read_bytes()  # 0002: validate, bare pod, denied
    with caplog.at_level(logging.INFO, logger="podgate"):
        post(client, "/validate", body)
    (record,) = [r for r in caplog.records if r.name == "podgate.admission"]
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message"} | LOG_FIELDS
    request = json.loads(body)["request"]
    assert {k: line[k] for k in LOG_FIELDS - {"durationMs"}} == {
        "uid": request["uid"],
        "endpoint": "validate",
        "kind": "Pod",
        "namespace": "capture-demo",
        "name": "bare-no-resources",
        "generateName": "",
        "operation": "CREATE",
        "user": "admin",
        "dryRun": False,
        "decision": "denied",
        "policies": ["requests-required"],
        "patchOps": 0,
        "warnings": 0,
    }
    assert "nginx" not in json.dumps(line) and "image" not in json.dumps(line)


def test_a_rejected_body_is_logged_with_its_reason(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="podgate"):
        post(client, "/mutate", b"{}")
    (record,) = [r for r in caplog.records if r.name == "podgate.admission"]
    fields = record.podgate_fields  # type: ignore[attr-defined]
    assert record.levelno == logging.WARNING
    assert {k: v for k, v in fields.items() if k != "durationMs"} == {
        "endpoint": "mutate",
        "status": 400,
        "reason": "kind must be AdmissionReview (got None)",
    }


ROUTED_CASES = {
    "review": (fixture_files("mutate")[0].read_bytes(), {"Content-Type": "application/json"}),
    "validate": (fixture_files("validate")[0].read_bytes(), {"Content-Type": "application/json"}),
    "charset": (fixture_files("mutate")[0].read_bytes(), {"Content-Type": "Application/JSON; charset=utf-8"}),
    "malformed": (b"{", {"Content-Type": "application/json"}),
    "no-uid": (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}', {}),
    "text": (b"{}", {"Content-Type": "text/plain"}),
    "no-type": (b"{}", {"Content-Type": ""}),
    "gzip": (b"{}", {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
    "too-large": (b"{" + b" " * 2048 + b"}", {"Content-Type": "application/json"}),
}


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
@pytest.mark.parametrize("case", list(ROUTED_CASES))
def test_the_review_routes_answer_as_flask_s_own_dispatch_does(
    source: PolicySource, path: str, case: str
) -> None:
    """ReviewRoutes serves the two routes ahead of Flask; Flask's dispatch reaches the same views."""
    body, headers = ROUTED_CASES[case]
    app = make_app(source, max_body_bytes=1024)
    assert isinstance(app.wsgi_app, ReviewRoutes)

    def call(wsgi: Any) -> tuple[str, list[tuple[str, str]], bytes]:
        environ = EnvironBuilder(path, method="POST", data=body, headers=headers).get_environ()
        answer, status, reply_headers = run_wsgi_app(wsgi, environ)
        return status, list(reply_headers.items()), b"".join(answer)

    routed, dispatched = call(app.wsgi_app), call(app.wsgi_app.app)
    assert routed == dispatched
    assert routed[1] == [("Content-Type", "application/json"), ("Content-Length", str(len(routed[2])))]


def test_other_methods_on_the_review_routes_are_flask_s(client: FlaskClient) -> None:
    assert client.put("/validate", data=b"{}", headers=APISERVER_HEADERS).status_code == 405
    assert set(client.options("/mutate").headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
