"""Bad input at /mutate, /validate and evaluate(): a 400 with a reason, or a well-formed AdmissionReview.

Never a 5xx, never the fail mode (which is for podgate's own bugs), never an exception other than
ReviewError out of the engine. Bodies come from tests/strategies.py; `make fuzz` runs the long mode.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonpatch
import orjson
import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FUZZ_PROFILE, POLICIES, fixture_request
from tests.serving_support import APISERVER_HEADERS, Pki, fixture_files, pinned_policies, serve, write_pki
from tests.strategies import CASES, bodies, encode, reviews
from webhook import PolicySet, evaluate, load_policies
from webhook.errors import ReviewError
from webhook.kube import jsoncodec
from webhook.server.app import create_app
from webhook.server.metrics import Metrics
from webhook.server.reload import PolicySource
from webhook.server.settings import Settings

FUZZ = settings.get_profile(FUZZ_PROFILE)
SECONDS = 10.0
LIMIT = Settings().max_body_bytes
SETUPS = [(policies, mode) for policies in ("shipped", "pinned") for mode in ("admit", "deny")]
# What a reason must never show: a traceback, Python's repr of an object, class or exception, or
# Python's names for JSON's types.
INTERNALS = re.compile(
    r"Traceback|File \"|<[\w.]+ object at 0x|<class '|\w+Error\(|\(got (str|dict|list|int|float|NoneType)\)"
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PolicySource]:
    found = {}
    for name, path in (("shipped", POLICIES), ("pinned", pinned_policies(tmp_path_factory.mktemp("p")))):
        source = PolicySource(path)
        assert source.poll() is not None and source.healthy()
        found[name] = source
    return found


@pytest.fixture(scope="module")
def clients(sources: dict[str, PolicySource]) -> dict[tuple[str, str], FlaskClient]:
    return {
        (name, mode): create_app(
            sources[name], replace(Settings(), fail_mode=mode), metrics=Metrics()
        ).test_client()
        for name, mode in SETUPS
    }


def policies_of(sources: dict[str, PolicySource], name: str) -> PolicySet:
    policies = sources[name].current()
    assert policies is not None
    return policies


def check_reason(reason: object) -> None:
    assert isinstance(reason, str) and reason.strip(), reason
    assert "\n" not in reason and "\r" not in reason and len(reason) <= 300, reason
    assert not INTERNALS.search(reason), reason


def check_answer(status: int, data: bytes, body: bytes, phase: str, policies: PolicySet) -> None:
    """A 400 saying why, or a 200 whose AdmissionReview the apiserver accepts and can apply."""
    answer = json.loads(data)
    if len(body) > LIMIT:  # several 1 MB strings, twice over in an UPDATE
        assert status == 413 and list(answer) == ["error"], (status, data[:300])
        return
    assert status in (200, 400), (status, data[:300])
    if status == 400:
        assert list(answer) == ["error"]
        check_reason(answer["error"])
        return
    sent = orjson.loads(body)
    assert (answer["apiVersion"], answer["kind"]) == (sent["apiVersion"], "AdmissionReview")
    response = answer["response"]
    assert response["uid"] == sent["request"]["uid"]
    assert type(response["allowed"]) is bool
    assert "podgate could not evaluate" not in json.dumps(response), "malformed input met the fail mode"
    warnings = response.get("warnings", [])
    assert isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)
    if not response["allowed"]:
        assert response["status"]["code"] == 403 and isinstance(response["status"]["message"], str)
    if "patch" in response:
        assert phase == "mutate" and response["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(response["patch"], validate=True))
        patched = jsonpatch.apply_patch(sent["request"]["object"], ops)
        assert patched == evaluate(policies, sent["request"]).object


# Twice the profile's examples: with the engine fuzzer, the long mode passes 100,000 cases.
@settings(FUZZ, max_examples=FUZZ.max_examples * 2)
@given(body=bodies(), setup=st.sampled_from(SETUPS))
def test_both_endpoints_answer_bad_bodies_with_a_400_or_a_review(
    clients: dict[tuple[str, str], FlaskClient], sources: dict[str, PolicySource], body: bytes, setup: Any
) -> None:
    CASES["review: /mutate and /validate (Flask)"] += 1
    for phase in ("mutate", "validate"):
        started = time.monotonic()
        reply = clients[setup].post(f"/{phase}?timeout=10s", data=body, headers=APISERVER_HEADERS)
        # The apiserver gives up after the webhook's timeoutSeconds (3 s in deploy/): a review that
        # takes longer holds a worker thread for nothing. Generous, for slow machines.
        assert time.monotonic() - started < SECONDS, "a review held the worker"
        assert reply.content_type == "application/json"
        check_answer(reply.status_code, reply.data, body, phase, policies_of(sources, setup[0]))


@settings(FUZZ, max_examples=FUZZ.max_examples * 2)
@given(review=reviews(), name=st.sampled_from(["shipped", "pinned"]))
def test_evaluate_raises_nothing_but_review_errors(
    sources: dict[str, PolicySource], review: dict[str, Any], name: str
) -> None:
    CASES["review: evaluate()"] += 1
    body = encode(review)
    try:
        # Exactly what the server would hand the engine; parsed twice, as deepcopy cannot copy what
        # orjson can parse (1,000 levels deep).
        request, received = orjson.loads(body)["request"], orjson.loads(body)["request"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return  # refused before the engine: the HTTP fuzzer covers it
    try:
        decision = evaluate(policies_of(sources, name), request)
    except ReviewError as error:
        check_reason(str(error))
        return
    if isinstance(request, dict) and isinstance(request.get("object"), dict):
        try:
            received_bytes = jsoncodec.dumps(received["object"])
        except jsoncodec.EncodeError:
            assert decision.skipped and not decision.patch  # too deep to copy: admitted unread
            return
        assert jsoncodec.dumps(request["object"]) == received_bytes, "the engine changed the object"
        patched = jsonpatch.apply_patch(copy.deepcopy(request["object"]), list(decision.patch))
        assert patched == decision.object
        if decision.patch:  # what podgate stores, podgate leaves alone the next time
            assert evaluate(policies_of(sources, name), {**request, "object": patched}).patch == ()


QUANTITY_IN_A_TEST_NAMESPACE = """\
from tests.conftest import POLICIES, fixture_request
from webhook import evaluate, load_policies
request = fixture_request("0001")
request["namespace"] = "test"
request["object"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": %r}}
evaluate(load_policies(POLICIES), request)
"""


def test_a_quantity_of_5000_digits_is_warned_about() -> None:
    # int() refuses over 4,300 digits with a ValueError of its own: quantity.py must refuse first.
    request = fixture_request("0001")
    request["namespace"] = "test"
    request["object"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "9" * 5000}}
    decision = evaluate(load_policies(POLICIES), request)
    assert any("cpu left alone" in warning for warning in decision.warnings)


def test_a_huge_exponent_does_not_stall_the_worker() -> None:
    # Fraction(10) ** 99999999 takes minutes: one such pod holds a worker thread that long.
    code = QUANTITY_IN_A_TEST_NAMESPACE % "1e99999999"
    subprocess.run([sys.executable, "-c", code], timeout=3, check=True, cwd=Path(__file__).parent.parent)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"))


def worker_pids(master: int) -> set[int]:
    """The gunicorn workers: children of the `podgate serve` process (Linux /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master:
            children.add(int(stat.parent.name))
    return children


@pytest.mark.serving
def test_a_real_server_survives_fuzzed_bodies_over_kept_alive_connections(pki: Pki, tmp_path: Path) -> None:
    with serve(POLICIES, pki, tmp_path, workers=2) as server:
        workers = worker_pids(server.process.pid)
        assert len(workers) == 2
        conn = server.connect()
        statuses: list[int] = []
        sockets: set[int] = set()

        @settings(FUZZ, max_examples=300, derandomize=True)
        @given(body=bodies(), phase=st.sampled_from(["mutate", "validate"]))
        def post(body: bytes, phase: str) -> None:
            CASES["review: real server over TLS"] += 1
            status, _, data = server.request("POST", f"/{phase}?timeout=10s", body, APISERVER_HEADERS, conn)
            statuses.append(status)
            sockets.add(id(conn.sock))
            assert status in ((200, 400) if len(body) <= LIMIT else (413,)), (status, data[:300])

        post()
        assert len(statuses) >= 300
        assert len(sockets) == 1, "the server closed the kept-alive connection"
        assert worker_pids(server.process.pid) == workers, "a worker died and was replaced"
        assert not [line for line in server.log.read_text().splitlines() if "WORKER TIMEOUT" in line]
        normal = fixture_files("validate")[0].read_bytes()
        assert server.post_review("/validate", normal, conn)[0] == 200
        conn.close()
