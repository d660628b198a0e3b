"""LimitRanges as the LimitRanger plugin applies them: stored defaults, pod defaults, and values that fit."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.kube.limitrange import (
    Bounds,
    LimitRange,
    apply_defaults,
    container_bounds,
    fit,
    parse_limit_range,
)
from webhook.kube.quantity import parse_quantity


def limit_range(name: str, *items: dict[str, Any]) -> LimitRange:
    return parse_limit_range(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": name},
            "spec": {"limits": list(items)},
        }
    )


def q(text: str) -> Any:
    return parse_quantity(text)


def test_the_api_defaults_of_a_container_entry_are_applied() -> None:
    # As the apiserver stored `max: {memory: 128Mi}, min: {cpu: 10m}` (checked with kubectl on v1.36).
    (item,) = limit_range(
        "low", {"type": "Container", "max": {"memory": "128Mi"}, "min": {"cpu": "10m"}}
    ).items
    assert {k: v.text for k, v in item.default.items()} == {"memory": "128Mi"}
    assert {k: v.text for k, v in item.default_request.items()} == {"cpu": "10m", "memory": "128Mi"}


def test_a_pod_entry_gets_no_defaults_and_a_broken_entry_is_left_out() -> None:
    found = limit_range(
        "x", {"type": "Pod", "max": {"cpu": "1"}}, {"type": "Container", "max": {"cpu": "lots"}}
    )
    (item,) = found.items
    assert (item.type, item.default) == ("Pod", {})


def test_pods_get_the_defaults_and_the_annotation_the_plugin_writes() -> None:
    pod: dict[str, Any] = {
        "metadata": {},
        "spec": {
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "20m"}}}
            ]
        },
    }
    ranges = (limit_range("low", {"type": "Container", "max": {"memory": "128Mi"}}),)
    apply_defaults(pod, ranges)
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "10m", "memory": "128Mi"},
        "limits": {"cpu": "20m", "memory": "128Mi"},
    }
    # What the real apiserver stored for this pod (dry run against ../shared/k8s, v1.36.2).
    assert pod["metadata"]["annotations"] == {
        "kubernetes.io/limit-ranger": "LimitRanger plugin set: memory request for container app; "
        "memory limit for container app"
    }


def test_a_pod_with_every_value_set_is_left_as_it_is() -> None:
    pod: dict[str, Any] = {
        "spec": {
            "containers": [
                {"name": "app", "resources": {"requests": {"memory": "1Mi"}, "limits": {"memory": "2Mi"}}}
            ]
        }
    }
    assert apply_defaults(pod, (limit_range("low", {"type": "Container", "max": {"memory": "128Mi"}}),)) == []
    assert "metadata" not in pod


def test_the_tightest_bound_of_several_limit_ranges_wins() -> None:
    ranges = (
        limit_range("a", {"type": "Container", "max": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "4"}}),
        limit_range("b", {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "10m"}}),
    )
    bounds = container_bounds(ranges, "cpu")
    assert (str(bounds.max.value), bounds.max.source) == ("1", "LimitRange b's max")  # type: ignore[union-attr]
    assert (str(bounds.min.value), bounds.min.source) == ("10m", "LimitRange b's min")  # type: ignore[union-attr]
    assert bounds.max_ratio is not None and bounds.max_ratio.source == "LimitRange a's maxLimitRequestRatio"
    assert not container_bounds(ranges, "memory")


BOUNDS = container_bounds(
    (
        limit_range(
            "low",
            {
                "type": "Container",
                "max": {"memory": "128Mi"},
                "min": {"memory": "16Mi"},
                "maxLimitRequestRatio": {"cpu": "2"},
            },
        ),
    ),
    "memory",
)
RATIO = container_bounds(
    (limit_range("low", {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}),), "cpu"
)


@pytest.mark.parametrize(
    ("bounds", "requested", "limit", "sets", "expected", "reasons"),
    [
        (
            BOUNDS,
            "256Mi",
            "256Mi",
            "both",
            ("128Mi", "128Mi"),
            {"limit": "LimitRange low's max is 128Mi", "request": "LimitRange low's max is 128Mi"},
        ),
        (
            BOUNDS,
            "8Mi",
            "8Mi",
            "both",
            ("16Mi", "16Mi"),
            {"limit": "LimitRange low's min is 16Mi", "request": "LimitRange low's min is 16Mi"},
        ),
        (BOUNDS, "64Mi", "256Mi", "limit", ("64Mi", "128Mi"), {"limit": "LimitRange low's max is 128Mi"}),
        # The user's own request is never changed: the default limit is lowered to it.
        (BOUNDS, "100Mi", "90Mi", "request", ("90Mi", "90Mi"), {"request": "the limit is 90Mi"}),
        (
            RATIO,
            "10m",
            "100m",
            "limit",
            ("10m", "20m"),
            {"limit": "LimitRange low's maxLimitRequestRatio is 2 and the request is 10m"},
        ),
        (
            RATIO,
            "10m",
            "100m",
            "request",
            ("50m", "100m"),
            {"request": "LimitRange low's maxLimitRequestRatio is 2 and the limit is 100m"},
        ),
        (
            RATIO,
            "333m",
            "1",
            "limit",
            ("333m", "666m"),
            {"limit": "LimitRange low's maxLimitRequestRatio is 2 and the request is 333m"},
        ),
        (RATIO, "10m", "100m", "none", ("10m", "100m"), {}),
        (Bounds(), "10", "1", "both", ("1", "1"), {"request": "the limit is 1"}),
    ],
    ids=[
        "max",
        "min",
        "max-limit-only",
        "request-to-user-limit",
        "ratio-lowers-limit",
        "ratio-raises-request",
        "ratio-rounds-down",
        "user-values",
        "no-bounds",
    ],
)
def test_fit_moves_only_what_podgate_sets(
    bounds: Bounds, requested: str, limit: str, sets: str, expected: tuple[str, str], reasons: dict[str, str]
) -> None:
    fitted = fit(
        bounds,
        q(requested),
        q(limit),
        set_request=sets in ("request", "both"),
        set_limit=sets in ("limit", "both"),
    )
    assert (fitted.request.text, fitted.limit.text) == expected  # type: ignore[union-attr]
    assert dict(fitted.reasons) == reasons
