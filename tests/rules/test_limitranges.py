"""Mutator effects fitted to LimitRanges: only podgate's own values move, and the message says why."""

from __future__ import annotations

from typing import Any

from webhook.kube.limitrange import parse_limit_range
from webhook.kube.pods import Container
from webhook.rules import Changed, Warned
from webhook.rules.limitranges import within_limit_ranges

LOW = (
    parse_limit_range(
        {"metadata": {"name": "low"}, "spec": {"limits": [{"type": "Container", "max": {"memory": "128Mi"}}]}}
    ),
)


def container(resources: dict[str, Any]) -> Container:
    return Container({"name": "app", "resources": resources}, "containers", 0)


def test_a_default_above_the_max_is_lowered_and_says_so() -> None:
    app = container({"limits": {"memory": "256Mi"}, "requests": {"memory": "64Mi"}})
    set_limit = Changed(
        app.path("resources", "limits", "memory"), 'container "app": memory limit set to 256Mi'
    )
    effects = within_limit_ranges(app, "memory", [set_limit, Warned("kept")], LOW)
    assert effects == [
        Changed(
            ("spec", "containers", 0, "resources", "limits", "memory"),
            'container "app": memory limit set to 128Mi, not the default 256Mi: '
            "LimitRange low's max is 128Mi",
        ),
        Warned("kept"),
    ]
    assert app.body["resources"] == {"limits": {"memory": "128Mi"}, "requests": {"memory": "64Mi"}}


def test_values_podgate_did_not_set_are_never_touched() -> None:
    app = container({"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}})
    assert within_limit_ranges(app, "memory", [], LOW) == []
    assert app.body["resources"]["limits"] == {"memory": "1Gi"}
    broken = container({"limits": {"memory": "lots"}, "requests": {"memory": "1Gi"}})
    change = Changed(broken.path("resources", "requests", "memory"), "set")
    assert within_limit_ranges(broken, "memory", [change], LOW) == [change]


def test_without_limit_ranges_effects_pass_through() -> None:
    app = container({"limits": {"memory": "256Mi"}})
    change = Changed(app.path("resources", "limits", "memory"), "set")
    assert within_limit_ranges(app, "memory", [change], ()) == [change]
