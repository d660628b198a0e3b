"""may_overlap: "disjoint" only when no pod can match both policies; whatever it cannot decide overlaps."""

from __future__ import annotations

import pytest

from tests.conftest import POLICIES
from webhook import load_policies
from webhook.kube.selector import parse_selector
from webhook.policy.model import Exclude, Match, Policy
from webhook.policy.overlap import may_overlap


def _policy(
    namespaces: tuple[str, ...] = (),
    labels: dict[str, object] | None = None,
    excluded: tuple[str, ...] = (),
    alternatives: tuple[Match, ...] = (),
) -> Policy:
    selector = parse_selector(labels) if labels is not None else None
    match = Match(namespaces=namespaces, selector=selector, any=alternatives)
    return Policy("p", (), match, Exclude(namespaces=excluded))


def _expression(operator: str, *values: str) -> dict[str, object]:
    return {"matchExpressions": [{"key": "env", "operator": operator, "values": list(values)}]}


DISJOINT = [
    (_policy(("test",)), _policy(("prod",))),
    (_policy(("test", "test-*")), _policy(("prod", "prod-*"))),  # fixed beginnings differ
    (_policy(("*-test",)), _policy(("*-prod",))),  # fixed endings differ
    (_policy(("team-a",)), _policy(("*-prod",))),
    (_policy(labels={"matchLabels": {"env": "test"}}), _policy(labels={"matchLabels": {"env": "prod"}})),
    (_policy(labels={"matchLabels": {"env": "test"}}), _policy(labels=_expression("NotIn", "test", "dev"))),
    (_policy(labels=_expression("Exists")), _policy(labels=_expression("DoesNotExist"))),
    (_policy(("test-*",)), _policy(excluded=("test-*",))),
    (_policy(("shop",)), _policy(excluded=("*",))),
    (_policy(alternatives=(Match(namespaces=("a",)), Match(namespaces=("b",)))), _policy(("c",))),
]
OVERLAPPING = [
    (_policy(("*-test",)), _policy(("team-*",))),  # team-x-test
    (_policy(("shop",)), _policy()),
    (_policy(labels={"matchLabels": {"env": "test"}}), _policy(("shop",))),
    (_policy(labels={"matchLabels": {"env": "test"}}), _policy(labels=_expression("NotIn", "prod"))),
    (_policy(("test-*",)), _policy(excluded=("test-a",))),  # test-b is in both
    (_policy(alternatives=(Match(namespaces=("a",)), Match(namespaces=("c",)))), _policy(("c",))),
    (_policy(("a?",)), _policy(("a??",))),  # disjoint by length, which the test does not look at
]


@pytest.mark.parametrize(("first", "second"), DISJOINT, ids=range(len(DISJOINT)))
def test_disjoint_matches(first: Policy, second: Policy) -> None:
    assert not may_overlap(first, second)
    assert not may_overlap(second, first)


@pytest.mark.parametrize(("first", "second"), OVERLAPPING, ids=range(len(OVERLAPPING)))
def test_overlapping_or_undecided_matches(first: Policy, second: Policy) -> None:
    assert may_overlap(first, second)
    assert may_overlap(second, first)


def test_without_selectors_only_namespaces_keep_policies_apart() -> None:
    # A labels rule changes the labels the other policy's selector sees.
    test, prod = (
        _policy(labels={"matchLabels": {"env": "test"}}),
        _policy(labels={"matchLabels": {"env": "prod"}}),
    )
    assert not may_overlap(test, prod)
    assert may_overlap(test, prod, selectors=False)
    assert not may_overlap(_policy(("a",)), _policy(("b",)), selectors=False)


def test_every_shipped_policy_overlaps_itself() -> None:
    for policy in load_policies(POLICIES).policies:
        assert may_overlap(policy, policy)
