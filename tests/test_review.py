import base64
import json

import pytest

from tests.conftest import fixture_review
from webhook.decision import Action, Change, Decision, Violation
from webhook.errors import ReviewError
from webhook.review import fallback_response, parse_review, response


def test_parses_a_captured_review() -> None:
    review = parse_review(json.dumps(fixture_review("0017")).encode())
    request = review.request
    assert review.api_version == "admission.k8s.io/v1"
    assert (request.kind, request.namespace, request.operation) == ("Pod", "capture-demo", "CREATE")
    assert request.name == "" and request.generate_name == "gen-name-"
    assert request.display_name == "gen-name-<generated>"
    assert request.username == "admin" and "system:masters" in request.groups


def test_dry_run_and_update_with_old_object() -> None:
    assert parse_review(fixture_review("0021")).request.dry_run is True
    update = parse_review(fixture_review("0029")).request
    assert update.operation == "UPDATE" and update.old_object is not None


def test_v1beta1_is_answered_in_v1beta1() -> None:
    review = fixture_review("0001")
    review["apiVersion"] = "admission.k8s.io/v1beta1"
    parsed = parse_review(review)
    answer = response(parsed, Decision(object={}), "mutate")
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["response"] == {"uid": review["request"]["uid"], "allowed": True}


def test_patch_only_when_non_empty_and_base64_json() -> None:
    review = parse_review(fixture_review("0001"))
    assert "patch" not in response(review, Decision(object={}), "mutate")["response"]
    ops = ({"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},)
    answer = response(review, Decision(object={}, patch=ops, warnings=("p.r: note",)), "mutate")["response"]
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == list(ops)
    assert answer["warnings"] == ["p.r: note"]


def test_validate_denies_with_403_warns_and_audits() -> None:
    review = parse_review(fixture_review("0012"))
    decision = Decision(
        object={},
        patch=({"op": "add", "path": "/x", "value": 1},),
        changes=(Change("p", "r", "/x", "set"),),
        violations=(
            Violation("requests-required", "cpu", Action.ENFORCE, 'container "a" is missing cpu request'),
            Violation("labels", "name", Action.WARN, "pod is missing labels x"),
            Violation("audit-only", "mem", Action.AUDIT, "no memory limit"),
        ),
        warnings=("mutation warnings belong to /mutate",),
    )
    answer = response(review, decision, "validate")["response"]
    assert answer["allowed"] is False
    assert answer["status"] == {
        "code": 403,
        "reason": "Forbidden",
        "message": 'requests-required.cpu: container "a" is missing cpu request',
    }
    assert answer["warnings"] == ["labels.name: pod is missing labels x"]
    assert answer["auditAnnotations"] == {"audit-only.mem": "no memory limit"}
    assert "patch" not in answer


def test_fallback_response_admits_with_a_warning_or_denies() -> None:
    review = parse_review(fixture_review("0001"))
    allowed = fallback_response(review, allowed=True, message="podgate failed")["response"]
    assert allowed == {"uid": review.uid, "allowed": True, "warnings": ["podgate failed"]}
    denied = fallback_response(review, allowed=False, message="podgate failed")["response"]
    assert denied["allowed"] is False and denied["status"]["code"] == 500


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[]", "body must be a JSON object"),
        (b'{"kind": "Pod"}', "kind must be AdmissionReview (got 'Pod')"),
        (b'{"kind": "AdmissionReview", "apiVersion": "v9"}', "apiVersion must be one of"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request is missing"),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}',
            "request.uid is missing",
        ),
        (b"\xff\xfe", "body is not valid JSON"),
    ],
)
def test_malformed_reviews_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_review(body)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("object", None, "request.object is missing"),
        ("object", "pod", "request.object must be a Mapping"),
        ("operation", "PATCH", "request.operation must be one of"),
        ("kind", None, "request.kind is missing"),
        ("oldObject", [1], "request.oldObject must be an object or null"),
    ],
)
def test_missing_or_mistyped_request_fields(field: str, value: object, message: str) -> None:
    review = fixture_review("0001")
    review["request"][field] = value
    with pytest.raises(ReviewError, match=message):
        parse_review(review)
