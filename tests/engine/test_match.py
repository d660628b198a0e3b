from typing import Any

import pytest

from tests.conftest import fixture_request
from webhook.engine.match import why_not
from webhook.kube.pods import view_of
from webhook.kube.request import parse_request
from webhook.policy.model import Policy
from webhook.policy.scope import parse_exclude, parse_match
from webhook.rules import Locator


def _why_not(
    match: dict[str, Any], request: dict[str, Any], exclude: dict[str, Any] | None = None
) -> str | None:
    at = Locator("t.yaml", {})
    policy = Policy("p", (), parse_match(match, at), parse_exclude(exclude or {}))
    parsed = parse_request(request)
    pod = view_of(dict(parsed.object), parsed.kind, parsed.namespace)
    assert pod is not None
    return why_not(policy, parsed, pod, mutating=True)


def test_an_empty_match_applies() -> None:
    assert _why_not({}, fixture_request("0001")) is None


@pytest.mark.parametrize(
    ("match", "reason"),
    [
        ({"kinds": ["Deployment"]}, "kind Pod is not among Deployment"),
        ({"operations": ["UPDATE"]}, "operation CREATE is not among UPDATE"),
        ({"namespaces": ["prod-*"]}, "namespace capture-demo does not match prod-*"),
        ({"selector": {"matchLabels": {"tier": "web"}}}, "labels do not match selector tier in (web)"),
    ],
)
def test_each_criterion_says_why_not(match: dict[str, Any], reason: str) -> None:
    assert _why_not(match, fixture_request("0001")) == reason


def test_any_needs_one_alternative() -> None:
    request = fixture_request("0001")
    alternatives = {"any": [{"namespaces": ["test"]}, {"selector": {"matchLabels": {"env": "test"}}}]}
    assert _why_not(alternatives, request) == (
        "namespace capture-demo does not match test and labels do not match selector env in (test)"
    )
    request["object"]["metadata"]["labels"] = {"env": "test"}
    assert _why_not(alternatives, request) is None


def test_mutations_default_to_create_only() -> None:
    request = fixture_request("0033")
    assert _why_not({}, request) == "operation UPDATE is not among CREATE"
    assert _why_not({"operations": ["CREATE", "UPDATE"]}, request) is None


def test_protected_namespaces_need_an_exact_name() -> None:
    request = fixture_request("0037")
    assert (
        _why_not({"namespaces": ["kube-*"]}, request)
        == "namespace kube-system is protected unless a policy names it"
    )
    assert _why_not({"any": [{"namespaces": ["kube-system"]}]}, request) is None


@pytest.mark.parametrize(
    ("exclude", "prefix", "reason"),
    [
        ({"namespaces": ["capture-*"]}, "0001", "namespace capture-demo is excluded"),
        ({"users": ["adm?n"]}, "0001", "user admin is excluded"),
        ({"groups": ["system:masters"]}, "0001", "group system:masters is excluded"),
        (
            {"serviceAccounts": ["kube-system/job-controller"]},
            "0055",
            "service account kube-system/job-controller is excluded",
        ),
        ({"serviceAccounts": ["kube-system/other"]}, "0055", None),
    ],
)
def test_exclusions(exclude: dict[str, Any], prefix: str, reason: str | None) -> None:
    assert _why_not({}, fixture_request(prefix), exclude) == reason
