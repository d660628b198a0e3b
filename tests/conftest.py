"""Shared test helpers: the captured AdmissionReviews and the shipped policies."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from webhook import Decision, PolicySet, evaluate, load_policies
from webhook.loader import parse_sources

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "admission-reviews"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
POLICIES = ROOT / "policies"


def fixture_review(prefix: str) -> dict[str, Any]:
    """A captured AdmissionReview by its number ("0011") or a longer prefix of its file name; a fresh copy."""
    matches = [f for f in FIXTURE_FILES if f.name.startswith(prefix)]
    assert len(matches) == 1, f"{prefix!r} matches {[m.name for m in matches]}"
    review: dict[str, Any] = json.loads(matches[0].read_text())
    return review


def fixture_request(prefix: str) -> dict[str, Any]:
    request: dict[str, Any] = fixture_review(prefix)["request"]
    return request


def with_labels(request: dict[str, Any], **labels: str) -> dict[str, Any]:
    """A copy of a Pod request whose pod carries extra labels (pass them as **{"a/b": "c"})."""
    changed = copy.deepcopy(request)
    changed["object"].setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    return changed


def pod_with(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The captured bare pod's CREATE request (0001) with other containers, and init containers if given."""
    request = fixture_request("0001")
    request["object"]["spec"]["containers"] = containers
    if init is not None:
        request["object"]["spec"]["initContainers"] = init
    return request


def evaluate_twice(policies: PolicySet, request: dict[str, Any]) -> Decision:
    """Evaluate; check the patch applies to the object as received, and that a second pass changes nothing."""
    decision = evaluate(policies, request)
    patched = jsonpatch.apply_patch(copy.deepcopy(request["object"]), list(decision.patch))
    assert patched == decision.object
    assert evaluate(policies, {**request, "object": patched}).patch == ()
    return decision


def policy_text(text: str, name: str = "test.yaml") -> PolicySet:
    return parse_sources([(name, text)])


@pytest.fixture(scope="session")
def default_policies() -> PolicySet:
    return load_policies(POLICIES)


@pytest.fixture
def make_policies() -> Callable[[str], PolicySet]:
    return policy_text
