"""Pods past podgate's limits are denied with the reason, never mutated, never waved through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import evaluate_twice, pod_with, policy_text
from webhook import PolicySet, evaluate
from webhook.engine.limits import MAX_CONTAINERS, MAX_ITEMS_PER_CONTAINER
from webhook.errors import PolicyError


def _container(index: int, **fields: Any) -> dict[str, Any]:
    return {"name": f"c{index}", "image": "nginx", **fields}


def test_a_pod_with_too_many_containers_is_denied_unchanged(default_policies: PolicySet) -> None:
    request = pod_with([_container(i) for i in range(MAX_CONTAINERS + 1)])
    decision = evaluate(default_policies, request)
    assert not decision.allowed and decision.patch == ()
    message = f"the pod has {MAX_CONTAINERS + 1} containers; podgate judges pods of at most {MAX_CONTAINERS}"
    assert decision.denial_message() == f"podgate.limits: {message}"
    # The mutating phase says it too: kubectl shows the warning even if another webhook denies first.
    assert decision.warnings == (f"podgate.limits: {message}",)


@pytest.mark.parametrize("field", ["env", "envFrom", "ports", "volumeMounts"])
def test_a_container_with_too_many_items_is_denied(default_policies: PolicySet, field: str) -> None:
    items = [{"name": f"V{i}", "value": "x"} for i in range(MAX_ITEMS_PER_CONTAINER + 1)]
    decision = evaluate(default_policies, pod_with([_container(0, **{field: items})]))
    assert not decision.allowed
    assert f"container 'c0' {field} has {MAX_ITEMS_PER_CONTAINER + 1} entries" in decision.denial_message()


def test_padding_cannot_escape_requests_required(default_policies: PolicySet) -> None:
    # A thousand dummy variables make the pod bigger, not exempt.
    padded = [{"name": f"PAD{i}", "value": "x"} for i in range(MAX_ITEMS_PER_CONTAINER + 1)]
    assert not evaluate(default_policies, pod_with([_container(0, env=padded)])).allowed


def test_a_pod_at_the_limits_is_judged_normally(default_policies: PolicySet) -> None:
    env = [{"name": f"V{i}", "value": "x"} for i in range(MAX_ITEMS_PER_CONTAINER - 7)]
    containers = [_container(i, env=list(env)) for i in range(8)]
    request = pod_with(containers)
    request["object"]["metadata"]["labels"] = {"app.kubernetes.io/env": "test"}
    decision = evaluate_twice(default_policies, request)
    assert decision.allowed and decision.patch


def test_the_builtin_name_is_reserved() -> None:
    text = "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {name: podgate}\nspec:\n"
    text += "  rules: [{name: r, requireRequests: {resources: [cpu]}}]\n"
    with pytest.raises(PolicyError, match=r"test\.yaml:1: metadata\.name: 'podgate' is reserved"):
        policy_text(text)
