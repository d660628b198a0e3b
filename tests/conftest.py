"""Shared test helpers: the captured AdmissionReviews and the shipped policies."""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, settings

from webhook import Decision, PolicySet, evaluate, load_policies
from webhook.policy.loader import parse_sources

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "admission-reviews"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
POLICIES = ROOT / "policies"

# The fuzz tests (tests/test_fuzz_*.py) run a fixed, fast subset in `make test`, and a long random run
# with PODGATE_FUZZ=long (`make fuzz`). Only they use these profiles; other property tests set their own.
FUZZ_PROFILE = f"fuzz-{os.environ.get('PODGATE_FUZZ', 'fast')}"
_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "fuzz-fast", max_examples=200, deadline=None, derandomize=True, suppress_health_check=_FUZZ_HEALTH
)
settings.register_profile(
    "fuzz-long",
    max_examples=25_000,
    deadline=None,
    derandomize=False,
    suppress_health_check=_FUZZ_HEALTH,
)


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a fuzz run, how many cases each fuzz test ran (tests/strategies.CASES) and how many failed."""
    strategies = sys.modules.get("tests.strategies")
    cases = getattr(strategies, "CASES", None)
    if not cases:
        return
    failed = [r for r in terminalreporter.stats.get("failed", []) if "test_fuzz_" in r.nodeid]
    terminalreporter.section(f"fuzz ({FUZZ_PROFILE})")
    for name, count in sorted(cases.items()):
        terminalreporter.write_line(f"{count:>9,} cases  {name}")
    terminalreporter.write_line(f"{sum(cases.values()):>9,} cases in all; {len(failed)} fuzz tests failed")
