"""The webhook's HTTP face: create_app() with /mutate, /validate, /healthz, /readyz and /metrics.

A view only decodes the AdmissionReview, asks the engine and encodes its answer; `review.response`
builds the body, exactly as for `podgate apply`. One set of error handlers maps what can go wrong
to HTTP: a malformed review is the sender's 400, an engine failure is answered by the fail mode.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout, UnsupportedMediaType

from webhook.engine.evaluation import evaluate_request
from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.kube.pods import POD_KINDS
from webhook.server.logs import LOGGER, fields
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


def create_app(
    policy_source: PolicySource,
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    certificates: CertificateSource | None = None,
) -> Flask:
    """The WSGI app; `policy_source` must have been polled once, or every review meets the fail mode."""
    app = Flask(__name__)
    meter = metrics or Metrics()

    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()

    def admit(phase: Phase) -> Response:
        review = parse_review(read_body(settings.max_body_bytes))
        policies = policy_source.current()
        try:
            if policies is None:
                raise RuntimeError("no policy set is loaded")
            # parse_review has already checked and typed the request: do not parse it again.
            decision = evaluate_request(policies, review.request, validating=phase == "validate")
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
            reply = json_response(answer, 200)
            record(phase, review, FAILED, answer, acted=(), patch_ops=0)
            return reply
        # Each phase reports its own half of the decision: a pod passes both, and is counted once for each.
        if phase == "mutate":
            meter.acted(((c.policy, c.rule) for c in decision.changes), ())
            acted = {c.policy for c in decision.changes}
            result, patch_ops = (PATCHED if decision.patch else UNCHANGED), len(decision.patch)
        else:
            meter.acted((), ((v.policy, v.rule, str(v.action)) for v in decision.violations))
            acted = {v.policy for v in decision.violations}
            result, patch_ops = (ALLOWED if decision.allowed else DENIED), 0
        reply = json_response(answer, 200)
        record(phase, review, result, answer, acted=tuple(sorted(acted)), patch_ops=patch_ops)
        return reply

    def record(
        phase: Phase,
        review: Review,
        result: str,
        answer: dict[str, Any],
        acted: tuple[str, ...],
        patch_ops: int,
    ) -> None:
        seconds = time.perf_counter() - g.started
        req = review.request
        # Label values come from a closed set: a sender's made-up kind must not mint a new series.
        kind = req.kind if req.kind in POD_KINDS else "other"
        meter.admission(phase, kind, req.operation, result, seconds)
        body = answer["response"]
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
            "warnings": len(body.get("warnings", ())),
            "durationMs": round(seconds * 1000, 3),
        }
        log.info("admission", extra=fields(**line))

    @app.post("/mutate")
    def mutate() -> Response:
        return admit("mutate")

    @app.post("/validate")
    def validate() -> Response:
        return admit("validate")

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
        return json_response({"error": "internal error; see the server log"}, 500)

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

    return app


def read_body(limit: int) -> bytes:
    """The body, refused up front (Content-Length, Content-Type) or as soon as it grows past `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    if request.mimetype != JSON:
        raise UnsupportedMediaType(f"Content-Type must be {JSON} (got {request.content_type or 'none'!r})")
    if request.content_encoding not in (None, "", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {request.content_encoding!r} is not supported")
    chunks, size = [], 0
    # A chunked body has no Content-Length: count while reading, never buffer more than limit + 1 bytes.
    # The read deadline lives in the socket (webhook/server/tls.py), not here: gunicorn's body reader blocks
    # until a whole chunk has arrived, so a check between chunks could not stop a trickling client.
    try:
        while chunk := request.stream.read(min(READ_CHUNK, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge(f"body is over the limit of {limit} bytes")
    except TimeoutError:
        raise RequestTimeout("the body did not arrive within the read timeout") from None
    return b"".join(chunks)


def json_response(body: dict[str, Any], status: int) -> Response:
    return Response(jsoncodec.dumps(body), status, content_type=JSON)
