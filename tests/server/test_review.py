import base64
import json
import re
from typing import Any

import pytest

from tests.conftest import fixture_review
from webhook.engine.decision import Action, Change, Decision, Violation
from webhook.errors import ReviewError
from webhook.server.review import fallback_response, parse_review, response


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
    ops = ({"op": "add", "path": "/metadata", "value": {"labels": {"a": "b"}}},)
    decision = Decision(object={"metadata": {"labels": {"a": "b"}}}, received={}, warnings=("p.r: note",))
    answer = response(review, decision, "mutate")["response"]
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == list(ops)
    assert answer["warnings"] == ["p.r: note"]


def test_validate_denies_with_403_warns_and_audits() -> None:
    review = parse_review(fixture_review("0012"))
    decision = Decision(
        object={"x": 1},
        received={},
        changes=(Change("p", "r", ("x",), "set"),),
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
        ("object", "pod", "request.object must be an object (got string)"),
        ("operation", "PATCH", "request.operation must be one of"),
        ("kind", None, "request.kind is missing"),
        ("oldObject", [1], "request.oldObject must be an object (got array)"),
    ],
)
def test_missing_or_mistyped_request_fields(field: str, value: object, message: str) -> None:
    review = fixture_review("0001")
    review["request"][field] = value
    with pytest.raises(ReviewError, match=re.escape(message)):
        parse_review(review)


# Found by tests/test_fuzz_review.py: each of these used to escape as a TypeError, AttributeError or
# RecursionError (a 500, or the fail mode); each is now a 400 naming the field.
DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f'{{"kind": {DEEP}}}', "kind must be AdmissionReview (got an array)"),
        (
            f'{{"kind": "AdmissionReview", "apiVersion": {DEEP}}}',
            "apiVersion must be one of admission.k8s.io/v1, admission.k8s.io/v1beta1 (got an array)",
        ),
        ('{"kind": "%s"}' % ("x" * 100_000), "kind must be AdmissionReview (got 'xxxxxxxx"),
    ],
    ids=["deep-kind", "deep-api-version", "huge-kind"],
)
def test_a_wrong_envelope_is_named_briefly_whatever_it_holds(body: str, message: str) -> None:
    with pytest.raises(ReviewError) as caught:
        parse_review(body)
    assert str(caught.value).startswith(message) and len(str(caught.value)) < 200


def _set(review: dict[str, Any], path: str, value: object) -> None:
    node = review["request"]
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value


@pytest.mark.parametrize(
    ("prefix", "path", "value", "message"),
    [
        ("0001", "operation", "DELETE", None),
        ("0001", "kind.kind", [["Pod"]], "request.kind.kind must be a string (got array)"),
        ("0001", "namespace", {"a": 1}, "request.namespace must be a string (got object)"),
        ("0001", "userInfo.groups", 5, "request.userInfo.groups must be an array (got number)"),
        ("0001", "userInfo.groups", ["a", None], "request.userInfo.groups[1] must be a string (got null)"),
        ("0001", "object.metadata", None, "request.object.metadata must be an object (got null)"),
        ("0001", "object.metadata.name", 7, "request.object.metadata.name must be a string (got number)"),
        (
            "0001",
            "object.metadata.labels",
            {"app": {"a": 1}},
            "request.object.metadata.labels['app'] must be a string (got object)",
        ),
        ("0001", "object.spec", None, "request.object.spec must be an object (got null)"),
        (
            "0001",
            "object.spec.containers",
            "abc",
            "request.object.spec.containers must be an array (got string)",
        ),
        (
            "0001",
            "object.spec.containers.0",
            5,
            "request.object.spec.containers[0] must be an object (got number)",
        ),
        (
            "0001",
            "object.spec.containers.0.resources",
            None,
            "request.object.spec.containers[0].resources must be an object (got null)",
        ),
        (
            "0001",
            "object.spec.containers.0.env",
            ["A=1"],
            "request.object.spec.containers[0].env[0] must be an object (got string)",
        ),
        (
            "0001",
            "object.spec.tolerations",
            5,
            "request.object.spec.tolerations must be an array (got number)",
        ),
        (
            "0039",
            "object.spec.template.metadata",
            [1],
            "request.object.spec.template.metadata must be an object (got array)",
        ),
        (
            "0039",
            "object.spec.template.spec",
            "x",
            "request.object.spec.template.spec must be an object (got string)",
        ),
        (
            "0057",
            "object.spec.jobTemplate",
            [],
            "request.object.spec.jobTemplate must be an object (got array)",
        ),
    ],
)
def test_a_mistyped_pod_field_is_named_by_its_path(
    prefix: str, path: str, value: object, message: str | None
) -> None:
    review = fixture_review(prefix)
    _set(review, path, value)
    if message is None:  # a DELETE's object may be anything the engine never reads, but must be an object
        review["request"]["object"] = [1]
        message = "request.object must be an object (got array)"
    with pytest.raises(ReviewError) as caught:
        parse_review(review)
    assert str(caught.value) == message


def test_lists_may_be_null_as_go_sends_empty_slices() -> None:
    review = fixture_review("0039")
    template = review["request"]["object"]["spec"]["template"]
    template["spec"]["initContainers"] = None
    template["spec"]["tolerations"] = None
    template["metadata"]["labels"] = None
    assert parse_review(review).request.kind == "Deployment"
