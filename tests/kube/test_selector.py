import pytest

from webhook.kube.selector import parse_selector


def test_match_labels_and_expressions_are_anded() -> None:
    selector = parse_selector(
        {
            "matchLabels": {"app.kubernetes.io/env": "test"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches({"app.kubernetes.io/env": "test", "tier": "web"})
    assert not selector.matches({"app.kubernetes.io/env": "prod", "tier": "web"})
    assert not selector.matches({"app.kubernetes.io/env": "test", "tier": "db"})
    assert not selector.matches({"app.kubernetes.io/env": "test", "tier": "web", "legacy": "yes"})


def test_notin_is_satisfied_by_a_missing_key_as_in_kubernetes() -> None:
    selector = parse_selector({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]})
    assert selector.matches({})
    assert selector.matches({"env": "test"})
    assert not selector.matches({"env": "prod"})


def test_exists() -> None:
    selector = parse_selector({"matchExpressions": [{"key": "team", "operator": "Exists"}]})
    assert selector.matches({"team": ""})
    assert not selector.matches({"other": "x"})


def test_empty_selector_matches_everything() -> None:
    assert parse_selector({}).matches({"any": "thing"})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"key": "a", "operator": "In", "values": []}, "must be non-empty for operator In"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "must be empty for operator Exists"),
    ],
)
def test_operator_value_rules(expression: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_selector({"matchExpressions": [expression]})
