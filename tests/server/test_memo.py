"""webhook/server/memo.py: a /mutate answer reused for a request identical but for its uid, and why."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import strategies
from tests.serving_support import REPO, fixture_files, patched_cpu
from webhook.engine.evaluation import evaluate_request
from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.kube.cluster import ClusterFacts
from webhook.kube.request import parse_request
from webhook.policy.loader import load_policies
from webhook.server.app import create_app
from webhook.server.memo import AnswerMemo, Remembered, split_answer
from webhook.server.metrics import Metrics
from webhook.server.reload import PolicySource
from webhook.server.review import parse_review, response
from webhook.server.settings import Settings

POLICIES = REPO / "policies"
HEADERS = {"Content-Type": "application/json"}


def replica_review(uid: str = "7b0f-0001") -> dict[str, Any]:
    """A ReplicaSet's pod at /mutate: a generateName, no name, no uid of its own, test-labelled."""
    review: dict[str, Any] = json.loads(fixture_files("mutate")[0].read_text())
    request = review["request"]
    request["uid"], request["name"] = uid, ""
    metadata = request["object"]["metadata"]
    metadata.pop("name", None)
    metadata["generateName"] = "web-5d8f7c9b4-"
    metadata["labels"] = {"app.kubernetes.io/env": "test", "app.kubernetes.io/name": "web"}
    return review


def encoded(review: dict[str, Any]) -> bytes:
    return json.dumps(review).encode()


def with_uid(review: dict[str, Any], uid: str) -> dict[str, Any]:
    other = copy.deepcopy(review)
    other["request"]["uid"] = uid
    return other


def polled(path: Path) -> PolicySource:
    source = PolicySource(path)
    assert source.poll() is not None
    return source


@pytest.fixture(scope="module")
def shipped() -> PolicySource:
    return polled(POLICIES)


def fresh_answer(policies: Any, body: bytes, facts: ClusterFacts | None = None) -> bytes:
    """What the engine and the encoder make of `body` at /mutate, with no memo anywhere."""
    review = parse_review(body)
    decision = evaluate_request(policies, review.request, cluster=facts)
    return jsoncodec.dumps(response(review, decision, "mutate"))


def test_a_second_pod_of_a_replicaset_is_answered_from_the_memo_byte_for_byte(shipped: PolicySource) -> None:
    app = create_app(shipped, Settings(), metrics=Metrics())
    memo: AnswerMemo = app.extensions["podgate.memo"]
    client = app.test_client()
    first, second = replica_review("uid-first"), replica_review("uid-second")
    assert client.post("/mutate", data=encoded(first), headers=HEADERS).status_code == 200
    reply = client.post("/mutate", data=encoded(second), headers=HEADERS)
    assert (memo.hits, memo.misses, len(memo)) == (1, 1, 1)
    assert reply.data == fresh_answer(shipped.current(), encoded(second))
    assert reply.json is not None and reply.json["response"]["uid"] == "uid-second"
    assert reply.json["response"]["patch"]  # it is the patched answer that is reused


def test_a_hit_is_counted_and_logged_as_a_fresh_answer_would_be(shipped: PolicySource) -> None:
    metrics = Metrics()
    client = create_app(shipped, Settings(), metrics=metrics).test_client()
    before = metrics.render()[0]
    for uid in ("a", "b"):
        client.post("/mutate", data=encoded(replica_review(uid)), headers=HEADERS)
    text = metrics.render()[0].decode()
    assert before != text
    labels = 'endpoint="mutate",kind="Pod",operation="CREATE",result="patched"'
    assert f"podgate_admission_requests_total{{{labels}}} 2.0" in text
    assert 'podgate_mutations_total{policy="test-defaults",rule="guaranteed-resources"} 2.0' in text


def test_validate_is_not_memoised(shipped: PolicySource) -> None:
    app = create_app(shipped, Settings(), metrics=Metrics())
    client = app.test_client()
    body = json.loads(fixture_files("validate")[0].read_text())
    for uid in ("a", "b"):
        assert client.post("/validate", data=encoded(with_uid(body, uid)), headers=HEADERS).status_code == 200
    assert (app.extensions["podgate.memo"].hits, len(app.extensions["podgate.memo"])) == (0, 0)


def test_an_object_with_a_name_is_not_memoised(shipped: PolicySource) -> None:
    """Its reviews repeat only when that same object is created again: a key for each would be waste."""
    app = create_app(shipped, Settings(), metrics=Metrics())
    client = app.test_client()
    named = _set(replica_review(), ("request", "name"), "web-0")
    for uid in ("a", "b"):
        assert client.post("/mutate", data=encoded(with_uid(named, uid)), headers=HEADERS).status_code == 200
    assert (app.extensions["podgate.memo"].misses, len(app.extensions["podgate.memo"])) == (0, 0)


def test_a_policy_reload_empties_the_memo(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    text = (POLICIES / "resources.yaml").read_text()
    (policy_dir / "resources.yaml").write_text(text)
    source = polled(policy_dir)
    app = create_app(source, Settings(), metrics=Metrics())
    client = app.test_client()
    assert client.post("/mutate", data=encoded(replica_review("a")), headers=HEADERS).status_code == 200
    assert patched_cpu(
        200, client.post("/mutate", data=encoded(replica_review("b")), headers=HEADERS).data
    ) == ("100m")
    assert app.extensions["podgate.memo"].hits == 1
    (policy_dir / "resources.yaml").write_text(text.replace("100m", "150m"))
    reloaded = source.poll()
    assert reloaded is not None and reloaded.loaded
    reply = client.post("/mutate", data=encoded(replica_review("c")), headers=HEADERS)
    assert app.extensions["podgate.memo"].hits == 1
    assert patched_cpu(reply.status_code, reply.data) == "150m"
    assert reply.data == fresh_answer(source.current(), encoded(replica_review("c")))


class Facts:
    """A ClusterCache stand-in: serves `current`, which the test replaces as a watch would."""

    def __init__(self, current: ClusterFacts) -> None:
        self.current = current

    def facts_for(self, namespace: str) -> ClusterFacts:
        return self.current

    def problems(self) -> list[str]:
        return []


def test_new_cluster_facts_empty_the_memo(shipped: PolicySource) -> None:
    cluster = Facts(ClusterFacts(limit_ranges_known=True))
    app = create_app(shipped, Settings(), metrics=Metrics(), cluster=cluster)  # type: ignore[arg-type]
    client = app.test_client()
    memo = app.extensions["podgate.memo"]
    client.post("/mutate", data=encoded(replica_review("a")), headers=HEADERS)
    client.post("/mutate", data=encoded(replica_review("b")), headers=HEADERS)
    assert memo.hits == 1
    # Equal facts, but a new object: what a watch event publishes. Its entries may not be reused.
    cluster.current = ClusterFacts(limit_ranges_known=True)
    reply = client.post("/mutate", data=encoded(replica_review("c")), headers=HEADERS)
    assert memo.hits == 1 and memo.misses == 2
    assert reply.data == fresh_answer(shipped.current(), encoded(replica_review("c")), cluster.current)


def test_the_key_is_the_request_without_its_uid_in_its_order_and_apiversion() -> None:
    memo = AnswerMemo()
    request = replica_review()["request"]
    key = memo.key("admission.k8s.io/v1", request)
    assert key == memo.key("admission.k8s.io/v1", {**request, "uid": "another"})
    assert key != memo.key("admission.k8s.io/v1beta1", request)
    assert key != memo.key("admission.k8s.io/v1", {**request, "namespace": "elsewhere"})
    reordered = dict(reversed(list(request.items())))
    assert key != memo.key("admission.k8s.io/v1", reordered)  # the answer's patch may follow the order
    assert memo.key("admission.k8s.io/v1", {k: v for k, v in request.items() if k != "uid"}) is None
    assert memo.key("admission.k8s.io/v1", {**request, "object": {"n": 2**70}}) is None


def _set(review: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(review)
    node = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return changed


UNLABELLED = {"app.kubernetes.io/name": "web"}
LABELS = ("request", "object", "metadata", "labels")
# One input at a time that the shipped policies answer differently (base changes, then the variant's):
# a key that left any of them out would hand the base request's answer to the variant.
VARIANTS: dict[str, tuple[dict[tuple[str | int, ...], Any], dict[tuple[str | int, ...], Any]]] = {
    "namespace": ({LABELS: UNLABELLED, ("request", "namespace"): "test"}, {("request", "namespace"): "prod"}),
    "labels": ({}, {LABELS: UNLABELLED}),
    "generateName": (
        {LABELS: {"app.kubernetes.io/env": "test"}},
        {(*LABELS[:-1], "generateName"): "api-7c9d-"},
    ),
    "resources": (
        {},
        {("request", "object", "spec", "containers", 0, "resources"): {"limits": {"cpu": "2"}}},
    ),
    "ports": (
        {},
        {("request", "object", "spec", "containers", 0, "ports"): [{"name": "http", "containerPort": 80}]},
    ),
    "operation": ({}, {("request", "operation"): "DELETE"}),
    "kind": ({}, {("request", "kind", "kind"): "ReplicaSet"}),
    "review apiVersion": ({}, {("apiVersion",): "admission.k8s.io/v1beta1"}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_request_that_differs_in_anything_but_its_uid_gets_its_own_answer(
    shipped: PolicySource, variant: str
) -> None:
    client = create_app(shipped, Settings(), metrics=Metrics()).test_client()
    base, other = replica_review(), None
    changes, variation = VARIANTS[variant]
    for path, value in changes.items():
        base = _set(base, path, value)
    other = base
    for path, value in variation.items():
        other = _set(other, path, value)
    for review, uid in ((base, "a"), (base, "b"), (other, "c")):
        body = encoded(with_uid(review, uid))
        answered = client.post("/mutate", data=body, headers=HEADERS)
        fresh = create_app(shipped, Settings(), metrics=Metrics()).test_client()
        expected = fresh.post("/mutate", data=body, headers=HEADERS)
        assert (answered.status_code, answered.data) == (expected.status_code, expected.data)
    # The variant matters: the base request's answer would have been wrong for it.
    assert answered.data != client.post("/mutate", data=encoded(with_uid(base, "c")), headers=HEADERS).data


def entry(size: int = 10) -> Remembered:
    return Remembered(b"p" * size, b"s", "patched", (), 0, 0, ())


def test_the_memo_keeps_the_most_recently_used_within_its_bounds() -> None:
    memo = AnswerMemo(max_entries=2, max_bytes=1000)
    inputs = (object(), object())
    for key in (b"a", b"b"):
        memo.put(key, *inputs, entry())
    assert memo.get(b"a", *inputs) is not None
    memo.put(b"c", *inputs, entry())
    assert [memo.get(k, *inputs) is not None for k in (b"a", b"b", b"c")] == [True, False, True]
    memo.put(b"big", *inputs, entry(985))  # by bytes: the rest must go
    assert [memo.get(k, *inputs) is not None for k in (b"a", b"c", b"big")] == [False, False, True]
    memo.put(b"huge", *inputs, entry(2000))  # larger than the whole memo: not kept
    assert memo.get(b"huge", *inputs) is None and len(memo) == 1


def test_other_inputs_find_nothing() -> None:
    memo = AnswerMemo()
    policies, facts = object(), object()
    memo.put(b"k", policies, facts, entry())
    assert memo.get(b"k", object(), facts) is None
    assert memo.get(b"k", policies, facts) is None  # emptied by the other set, not kept aside


def test_an_answer_is_split_around_its_uid_and_spliced_back_byte_for_byte() -> None:
    answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "x"}}
    answer["response"].update({"allowed": True, "warnings": ['w\u00e9 "q"']})
    split = split_answer(answer)
    assert split is not None
    for uid in ("x", "d9b4-\u00e9", 'with "quotes"'):
        remembered = Remembered(*split, "patched", (), 0, 1, ())
        assert remembered.body(uid) == jsoncodec.dumps(
            {**answer, "response": {**answer["response"], "uid": uid}}
        )


def test_an_answer_holding_the_placeholder_is_not_split() -> None:
    response = {"uid": "x", "allowed": True, "warnings": ["\x00podgate-uid\x00"]}
    assert split_answer({"apiVersion": "v", "kind": "AdmissionReview", "response": response}) is None


class Poison:
    """A uid that fails whatever is done with it but to be carried along."""

    def _refuse(self, *args: object) -> Any:
        raise AssertionError("the engine used the request's uid")

    __str__ = __repr__ = __format__ = __eq__ = __hash__ = __bool__ = __len__ = __lt__ = _refuse  # type: ignore[assignment]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(review=strategies.reviews(), validating=st.booleans())
def test_the_engine_never_reads_a_request_s_uid(review: dict[str, Any], validating: bool) -> None:
    policies = SHIPPED
    try:
        request = parse_request(review.get("request"))
    except ReviewError:
        return
    try:
        expected = evaluate_request(policies, request, validating=validating)
    except ReviewError:
        return
    poisoned = dataclasses.replace(request, uid=Poison())  # type: ignore[arg-type]
    decision = evaluate_request(policies, poisoned, validating=validating)
    assert (decision.allowed, decision.patch, decision.warnings) == (
        expected.allowed,
        expected.patch,
        expected.warnings,
    )


SHIPPED = load_policies(POLICIES)
SHIPPED_SOURCE = polled(POLICIES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reviews=st.lists(strategies.reviews(), min_size=1, max_size=3),
    uids=st.lists(st.sampled_from("abc")),
    nameless=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_a_memo_answer_is_the_fresh_answer(
    reviews: list[dict[str, Any]], uids: list[str], nameless: list[bool]
) -> None:
    """Reviews, some identical but for their uid, others differing anywhere: each is answered exactly as
    an app without a memo answers it, whether the memo had it or not. Most are stripped of their names,
    as a controller's pods are at /mutate (only those are memoised)."""
    for review, strip in zip(reviews, nameless, strict=False):
        request = review.get("request")
        if strip and isinstance(request, dict):
            request["name"] = ""
            metadata = (
                request.get("object", {}).get("metadata") if isinstance(request.get("object"), dict) else None
            )
            if isinstance(metadata, dict):
                metadata["generateName"] = f"{metadata.pop('name', 'pod')}-"
    app = create_app(SHIPPED_SOURCE, Settings(), metrics=Metrics())
    client = app.test_client()
    memo = app.extensions["podgate.memo"]
    sent = [(review, uid) for review in reviews for uid in ["first", *uids]]
    sent += [(reviews[0], "again")]
    for review, uid in sent:
        if not isinstance(review.get("request"), dict):
            continue
        body = strategies.encode(with_uid(review, uid))
        hits = memo.hits
        answered = client.post("/mutate", data=body, headers=HEADERS)
        fresh = create_app(SHIPPED_SOURCE, Settings(), metrics=Metrics()).test_client()
        expected = fresh.post("/mutate", data=body, headers=HEADERS)
        assert (answered.status_code, answered.data) == (expected.status_code, expected.data)
        strategies.CASES["memo: answers from the memo" if memo.hits > hits else "memo: fresh answers"] += 1
