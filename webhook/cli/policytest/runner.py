"""Run test cases through the engine and compare every expectation, with a readable diff for each miss."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.cli.clusterfacts import case_facts, is_fact, with_limit_range_defaults
from webhook.cli.policytest.fieldpath import lookup
from webhook.cli.policytest.suite import Case, Expectation, Suite
from webhook.engine.decision import Decision
from webhook.engine.evaluation import evaluate
from webhook.errors import PolicyError, PolicyIssue, ReviewError
from webhook.kube.cluster import NO_FACTS, ClusterFacts
from webhook.kube.request import parse_request
from webhook.policy.loader import NO_POLICY_FILES, parse_sources, read_sources
from webhook.policy.model import PolicySet


@dataclass(frozen=True)
class Result:
    """One object of one case: what was expected, what came out, and every expectation it missed."""

    suite: str  # the test file
    case: str
    where: str  # file:line of the case
    resource: str  # "Deployment default/web"
    policies: tuple[str, ...]  # the policies that changed or judged it
    expected: str
    got: str
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


class PolicyCache:
    """Policy sets by the paths they come from: suites beside the same policies load them once."""

    def __init__(self) -> None:
        self._sets: dict[tuple[Path, ...], PolicySet | PolicyError] = {}

    def get(self, paths: tuple[Path, ...]) -> PolicySet:
        key = tuple(p.resolve() for p in paths)
        if key not in self._sets:
            try:
                sources = {source for path in paths for source in read_sources(path)}
                if not sources:
                    where = ", ".join(str(path) for path in paths)
                    raise PolicyError([PolicyIssue(where, 0, "", NO_POLICY_FILES)])
                self._sets[key] = parse_sources(sources)
            except PolicyError as error:
                self._sets[key] = error
        found = self._sets[key]
        if isinstance(found, PolicyError):
            raise found
        return found


def run_suite(suite: Suite, policies: PolicySet, cluster: ClusterFacts = NO_FACTS) -> list[Result]:
    return [result for case in suite.cases for result in run_case(suite.file, case, policies, cluster)]


def run_case(file: str, case: Case, policies: PolicySet, cluster: ClusterFacts = NO_FACTS) -> list[Result]:
    results = []
    # A Namespace or LimitRange among the inputs is what the other objects are judged with (docs/cluster.md).
    facts = case_facts(cluster, case.inputs)
    for item in (item for item in case.inputs if not is_fact(item)):
        expected = describe_expectation(case.expect)
        try:
            resource = parse_request(item.request).qualified_name
            request = with_limit_range_defaults(item.request, facts)
            decision = evaluate(policies, request, cluster=facts)
        except ReviewError as error:
            results.append(
                Result(file, case.name, case.where, item.source, (), expected, "error", (f"{error}",))
            )
            continue
        failures = tuple(check(case.expect, decision))
        got = f"{decision.outcome} ({describe_changes(decision)})"
        acted = decision.policies_acted()
        results.append(Result(file, case.name, case.where, resource, acted, expected, got, failures))
    return results


def messages_of(decision: Decision) -> list[str]:
    """Everything the user would read: the denial message first ("" when admitted), then every warning."""
    return [decision.denial_message(), *decision.warnings, *decision.admission_warnings()]


def describe_changes(decision: Decision) -> str:
    """ "3 changes", "unchanged", or for a workload stored as sent "unchanged; its pods get 12 changes"."""
    stored, pods = len(decision.stored_changes), len(decision.pod_changes)
    parts = [f"{stored} change{'s' if stored != 1 else ''}" if stored else "unchanged"]
    if pods:
        parts.append(f"its pods get {pods} change{'s' if pods != 1 else ''}")
    return "; ".join(parts)


def describe_expectation(expect: Expectation) -> str:
    checks = [
        name
        for name, present in (("object", expect.object is not None), ("patch", expect.patch is not None))
        if present
    ]
    if expect.fields:
        checks.append(f"{len(expect.fields)} field{'s' if len(expect.fields) > 1 else ''}")
    return expect.outcome + (f" + {', '.join(checks)}" if checks else "")


def check(expect: Expectation, decision: Decision) -> list[str]:
    """Every expectation the decision misses, as readable text; [] when the case passes."""
    failures: list[str] = []
    got = decision.outcome
    messages = [m for m in messages_of(decision) if m]
    if got != expect.outcome:
        said = "".join(f"\n    {m}" for m in messages)
        failures.append(f"outcome: expected {expect.outcome}, got {got}{said}")
    for wanted in expect.messages:
        if not any(wanted in message for message in messages):
            failures.append(f"no message contains {wanted!r}" + "".join(f"\n    {m}" for m in messages))
    if expect.object is not None and _normal(expect.object) != _normal(decision.object):
        failures.append("object differs:\n" + diff_text(expect.object, decision.object))
    if expect.patch is not None and _normal(list(expect.patch)) != _normal(list(decision.patch)):
        failures.append("patch differs:\n" + diff_text(list(expect.patch), list(decision.patch)))
    for field in expect.fields:
        found, value = lookup(decision.object, field.steps)
        if field.absent and found:
            failures.append(f"{field.path}: expected absent, got {_show(value)}")
        elif not field.absent and not found:
            failures.append(f"{field.path}: expected {_show(field.value)}, got no such field")
        elif not field.absent and _normal(value) != _normal(field.value):
            if isinstance(value, (dict, list)) and isinstance(field.value, (dict, list)):
                failures.append(f"{field.path} differs:\n" + diff_text(field.value, value))
            else:
                failures.append(f"{field.path}: expected {_show(field.value)}, got {_show(value)}")
    return failures


def _normal(value: Any) -> Any:
    # YAML gives dicts and lists, the engine may hand back tuples and other Mappings: compare as JSON.
    return json.loads(json.dumps(value, sort_keys=True))


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def diff_text(expected: Any, got: Any) -> str:
    """A unified diff, expected -> got, of the two values as YAML with sorted keys, indented for reports."""

    def dump(value: Any) -> list[str]:
        return yaml.safe_dump(_normal(value), sort_keys=True, default_flow_style=False).splitlines()

    lines = difflib.unified_diff(dump(expected), dump(got), "expected", "got", lineterm="", n=3)
    return "\n".join("    " + line for line in lines)
