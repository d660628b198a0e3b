"""AdmissionReview wire format: parse a review; build the response for the mutating or validating phase."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from webhook.engine.decision import Decision
from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.kube.request import AdmissionRequest, parse_request, shown

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
Phase = Literal["mutate", "validate"]
# The apiserver rejects audit annotation keys that are not valid qualified names (at most 63 chars).
_ANNOTATION_KEY_LIMIT = 63


@dataclass(frozen=True)
class Review:
    api_version: str
    request: AdmissionRequest
    raw_request: Mapping[str, Any]

    @property
    def uid(self) -> str:
        return self.request.uid


def parse_review(body: bytes | str | Mapping[str, Any]) -> Review:
    """A ReviewError says exactly what is wrong; nothing here raises anything else."""
    if isinstance(body, (bytes, str)):
        try:
            data = jsoncodec.loads(body)
        except jsoncodec.DecodeError as error:
            raise ReviewError(f"body is not valid JSON: {error}") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise ReviewError("body must be a JSON object (an AdmissionReview)")
    if data.get("kind") != "AdmissionReview":
        raise ReviewError(f"kind must be AdmissionReview (got {shown(data.get('kind'))})")
    api_version = data.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewError(f"apiVersion must be one of {', '.join(API_VERSIONS)} (got {shown(api_version)})")
    if "request" not in data or data["request"] is None:
        raise ReviewError("request is missing")
    return Review(str(api_version), parse_request(data["request"]), data["request"])


def response(review: Review, decision: Decision, phase: Phase) -> dict[str, Any]:
    """The AdmissionReview to send back, in the apiVersion it was asked in.

    The mutating phase carries the patch and the warnings raised while mutating, and always allows:
    judging happens at the validating phase, after every webhook has mutated.
    """
    answer: dict[str, Any] = {"uid": review.uid}
    if phase == "mutate":
        answer["allowed"] = True
        if decision.patch:
            answer["patchType"] = "JSONPatch"
            answer["patch"] = base64.b64encode(jsoncodec.dumps(list(decision.patch))).decode()
        warnings = list(decision.warnings)
    else:
        answer["allowed"] = decision.allowed
        if not decision.allowed:
            answer["status"] = {"code": 403, "reason": "Forbidden", "message": decision.denial_message()}
        warnings = decision.admission_warnings()
        annotations = {_annotation_key(k): v for k, v in decision.audit_annotations().items()}
        if annotations:
            answer["auditAnnotations"] = annotations
    if warnings:
        answer["warnings"] = warnings
    return _envelope(review, answer)


def fallback_response(review: Review, *, allowed: bool, message: str) -> dict[str, Any]:
    """What the fail mode answers when the engine itself failed: admit with a warning, or deny."""
    answer: dict[str, Any] = {"uid": review.uid, "allowed": allowed}
    if allowed:
        answer["warnings"] = [message]
    else:
        answer["status"] = {"code": 500, "reason": "InternalError", "message": message}
    return _envelope(review, answer)


def _envelope(review: Review, answer: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": answer}


def _annotation_key(key: str) -> str:
    return key[:_ANNOTATION_KEY_LIMIT].rstrip(".-_")
