"""The webhook's HTTP face: create_app() with /mutate, /validate, /healthz, /readyz and /metrics.

A view only decodes the AdmissionReview, asks the engine and encodes its answer; `review.response`
builds the body, exactly as for `podgate apply`. One set of error handlers maps what can go wrong
to HTTP: a malformed review is the sender's 400, an engine failure is answered by the fail mode.
The two review routes are served ahead of Flask's dispatch (ReviewRoutes), with the same answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout, UnsupportedMediaType
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.wsgi import get_content_length, get_input_stream

from webhook.engine.evaluation import evaluate_request
from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.kube.pods import POD_KINDS
from webhook.server.cluster import ClusterCache
from webhook.server.logs import LOGGER, fields, info_line
from webhook.server.memo import AnswerMemo, Remembered, split_answer
from webhook.server.metrics import Metrics
from webhook.server.reload import CertificateSource, PolicySource
from webhook.server.review import Phase, Review, fallback_response, parse_review, response
from webhook.server.settings import Settings

log = logging.getLogger(f"{LOGGER}.admission")

JSON = "application/json"
READ_CHUNK = 64 * 1024
# Results, the closed vocabulary of the requests metric's `result` label.
PATCHED, UNCHANGED, ALLOWED, DENIED, FAILED = "patched", "unchanged", "allowed", "denied", "failed"
REJECTED = {400: "invalid", 408: "timeout", 413: "too_large", 415: "unsupported_media_type"}
REVIEW_PATHS: dict[str, Phase] = {"/mutate": "mutate", "/validate": "validate"}
INTERNAL_ERROR = "internal error; see the server log"
WsgiEnviron = dict[str, Any]


def create_app(
    policy_source: PolicySource,
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    certificates: CertificateSource | None = None,
    cluster: ClusterCache | None = None,
) -> Flask:
    """The WSGI app; `policy_source` must have been polled once, or every review meets the fail mode.

    With `cluster`, reviews are judged with its facts (namespace labels, LimitRanges), and /readyz says
    not ready until it has listed them.
    """
    app = Flask(__name__)
    meter = metrics or Metrics()

    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()

    memo = AnswerMemo()
    app.extensions["podgate.memo"] = memo  # per process: each gunicorn worker has its own

    def serve_review(phase: Phase, environ: WsgiEnviron) -> tuple[int, bytes]:
        """A review's status and body, with the error handlers' answers: what /mutate and /validate say."""
        started = time.perf_counter()
        try:
            try:
                return 200, admit(phase, environ, started)
            except ReviewError as error:
                return rejected(phase, 400, str(error), started)
            except HTTPException as error:
                return rejected(phase, error.code or 500, error.description or error.name, started)
        except Exception:
            # Only reachable before a review was parsed (no uid to answer): the failurePolicy decides.
            log.exception("request failed", extra=fields(path=environ.get("PATH_INFO", "")))
            return 500, jsoncodec.dumps({"error": INTERNAL_ERROR})

    def admit(phase: Phase, environ: WsgiEnviron, started: float) -> bytes:
        review = parse_review(read_body(environ, settings.max_body_bytes))
        policies = policy_source.current()
        key = None
        try:
            if policies is None:
                raise RuntimeError("no policy set is loaded")
            facts = cluster.facts_for(review.request.namespace) if cluster is not None else None
            # Only objects still without a name: a controller's pods (webhook/server/memo.py).
            if phase == "mutate" and not review.request.name:
                key = memo.key(review.api_version, review.raw_request)
                known = memo.get(key, policies, facts) if key is not None else None
                if known is not None:
                    # The same request but for its uid, with the same policies and facts: the same answer.
                    meter.acted(known.mutated, ())
                    record(phase, review, known.result, known.warnings, known.acted, known.patch_ops, started)
                    return known.body(review.uid)
            # parse_review has already checked and typed the request: do not parse it again.
            decision = evaluate_request(
                policies, review.request, validating=phase == "validate", cluster=facts
            )
            answer = response(review, decision, phase)
        except ReviewError:
            raise  # the object itself cannot be judged (say, nested too deep): the sender's 400
        except Exception:
            # A bug in the engine or a policy must not hang or crash the worker: answer by the fail mode.
            admit_anyway = settings.fail_mode == "admit"
            # A fixed message: what failed, and where, is for the log line keyed by the uid, not the client.
            message = f"podgate could not evaluate this request; fail mode {settings.fail_mode}"
            log.exception("evaluation failed", extra=fields(uid=review.uid, endpoint=phase))
            answer = fallback_response(review, allowed=admit_anyway, message=message)
            reply = jsoncodec.dumps(answer)
            record(phase, review, FAILED, len(answer["response"].get("warnings", ())), (), 0, started)
            return reply
        warnings = len(answer["response"].get("warnings", ()))
        # Each phase reports its own half of the decision: a pod passes both, and is counted once for each.
        if phase == "mutate":
            mutated = tuple(sorted({(c.policy, c.rule) for c in decision.changes}))
            meter.acted(mutated, ())
            acted = tuple(sorted({c.policy for c in decision.changes}))
            result, patch_ops = (PATCHED if decision.patch else UNCHANGED), len(decision.patch)
            split = split_answer(answer) if key is not None else None
            if key is not None and split is not None:
                remembered = Remembered(*split, result, acted, patch_ops, warnings, mutated)
                memo.put(key, policies, facts, remembered)
                record(phase, review, result, warnings, acted, patch_ops, started)
                return remembered.body(review.uid)  # the answer, encoded once
        else:
            meter.acted((), ((v.policy, v.rule, str(v.action)) for v in decision.violations))
            acted = tuple(sorted({v.policy for v in decision.violations}))
            result, patch_ops = (ALLOWED if decision.allowed else DENIED), 0
        reply = jsoncodec.dumps(answer)
        record(phase, review, result, warnings, acted, patch_ops, started)
        return reply

    def record(
        phase: Phase,
        review: Review,
        result: str,
        warnings: int,
        acted: tuple[str, ...],
        patch_ops: int,
        started: float,
    ) -> None:
        seconds = time.perf_counter() - started
        req = review.request
        # Label values come from a closed set: a sender's made-up kind must not mint a new series.
        kind = req.kind if req.kind in POD_KINDS else "other"
        meter.admission(phase, kind, req.operation, result, seconds)
        line = {
            "uid": req.uid,
            "endpoint": phase,
            "kind": req.kind,
            "namespace": req.namespace,
            "name": req.name,
            "generateName": req.generate_name,
            "operation": req.operation,
            "user": req.username,
            "dryRun": req.dry_run,
            "decision": result,
            "policies": list(acted),
            "patchOps": patch_ops,
            "warnings": warnings,
            "durationMs": round(seconds * 1000, 3),
        }
        info_line(log, "admission", line)

    def rejected(phase: Phase, status: int, reason: str, started: float) -> tuple[int, bytes]:
        if status in REJECTED:
            seconds = time.perf_counter() - started
            meter.admission(phase, "", "", REJECTED[status], seconds)
            log.warning(
                "rejected",
                extra=fields(endpoint=phase, status=status, reason=reason, durationMs=seconds * 1000),
            )
        return status, jsoncodec.dumps({"error": reason})

    # Served by ReviewRoutes before Flask sees them; routed here too, so that Flask answers any other
    # method on these paths with 405 (and a caller of Flask's own dispatch gets the same answers).
    @app.post("/mutate")
    def mutate() -> Response:
        status, body = serve_review("mutate", request.environ)
        return Response(body, status, content_type=JSON)

    @app.post("/validate")
    def validate() -> Response:
        status, body = serve_review("validate", request.environ)
        return Response(body, status, content_type=JSON)

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "alive"}, 200)

    @app.get("/readyz")
    def readyz() -> Response:
        policies = policy_source.current()
        problems = []
        if policies is None:
            problems.append("no policy set loaded")
        if certificates is not None and not certificates.healthy():
            problems.append("no TLS certificate loaded")
        if cluster is not None:
            problems.extend(cluster.problems())
        body: dict[str, Any] = {"ready": not problems, "policySet": policies.digest if policies else None}
        if problems:
            body["problems"] = problems
        return json_response(body, 503 if problems else 200)

    @app.get("/metrics")
    def metrics_view() -> Response:
        text, content_type = meter.render()
        return Response(text, 200, content_type=content_type)

    @app.errorhandler(ReviewError)
    def bad_review(error: ReviewError) -> Response:
        return reject(400, str(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return reject(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # Only reachable before a review was parsed (no uid to answer): the apiserver's failurePolicy decides.
        log.exception("request failed", extra=fields(path=request.path))
        return json_response({"error": INTERNAL_ERROR}, 500)

    def reject(status: int, reason: str) -> Response:
        endpoint = request.path.strip("/")
        if status in REJECTED and endpoint in ("mutate", "validate"):
            seconds = time.perf_counter() - g.get("started", time.perf_counter())
            meter.admission(endpoint, "", "", REJECTED[status], seconds)
            log.warning(
                "rejected",
                extra=fields(endpoint=endpoint, status=status, reason=reason, durationMs=seconds * 1000),
            )
        return json_response({"error": reason}, status)

    app.wsgi_app = ReviewRoutes(app.wsgi_app, serve_review)  # type: ignore[method-assign]
    return app


class ReviewRoutes:
    """WSGI middleware: POST /mutate and /validate answered ahead of Flask's dispatch.

    Flask's request context, Werkzeug's Request and Response objects and the dispatch cost about as
    much as the engine on a small review (benchmarks/BENCHMARKS.md, issue 16); a review needs none of
    them. The answers are the views' own (they call the same `serve_review`): the same statuses, bodies
    and headers (Content-Type, Content-Length), the same metrics and log lines. Flask's request hooks do
    not run for these two; everything else, any other method on these paths included, is Flask's.
    """

    def __init__(
        self, app: Callable[..., Iterable[bytes]], serve: Callable[[Phase, WsgiEnviron], tuple[int, bytes]]
    ) -> None:
        self.app, self.serve = app, serve

    def __call__(self, environ: WsgiEnviron, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            phase = REVIEW_PATHS.get(environ.get("PATH_INFO", ""))
            if phase is not None:
                status, body = self.serve(phase, environ)
                headers = [("Content-Type", JSON), ("Content-Length", str(len(body)))]
                start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", headers)
                return [body]
        return self.app(environ, start_response)


def read_body(environ: WsgiEnviron, limit: int) -> bytes:
    """The body, refused up front (Content-Length, Content-Type) or as soon as it grows past `limit`.

    Read from the WSGI environ as Werkzeug's Request reads it (its own helpers), so that the Flask views
    and ReviewRoutes decide alike.
    """
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise RequestEntityTooLarge(f"body is {length} bytes; the limit is {limit}")
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type != JSON and parse_options_header(content_type)[0].lower() != JSON:
        raise UnsupportedMediaType(f"Content-Type must be {JSON} (got {content_type or 'none'!r})")
    encoding = environ.get("HTTP_CONTENT_ENCODING")
    if encoding not in (None, "", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported")
    stream = get_input_stream(environ)
    chunks, size = [], 0
    # A chunked body has no Content-Length: count while reading, never buffer more than limit + 1 bytes.
    # The read deadline lives in the socket (webhook/server/tls.py), not here: gunicorn's body reader blocks
    # until a whole chunk has arrived, so a check between chunks could not stop a trickling client.
    try:
        while chunk := stream.read(min(READ_CHUNK, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge(f"body is over the limit of {limit} bytes")
    except TimeoutError:
        raise RequestTimeout("the body did not arrive within the read timeout") from None
    return b"".join(chunks)


def json_response(body: dict[str, Any], status: int) -> Response:
    return Response(jsoncodec.dumps(body), status, content_type=JSON)
