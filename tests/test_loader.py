import json
from pathlib import Path

import pytest

from tests.conftest import POLICIES, policy_text
from webhook import load_policies
from webhook.errors import PolicyError
from webhook.loader import parse_sources
from webhook.schema import PUBLISHED, render

GOOD = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: defaults
spec:
  match:
    namespaces: ["team-*"]
    selector:
      matchLabels: {app.kubernetes.io/env: test}
  exclude:
    users: ["system:serviceaccount:ci:*"]
  rules:
    - name: cpu
      resources:
        defaults:
          cpu: {request: 100m, limit: "1"}
"""


def _issues(text: str, name: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_sources([(name, text)])
    return [str(issue) for issue in caught.value.issues]


def test_a_valid_policy_is_parsed_into_the_model() -> None:
    policies = policy_text(GOOD)
    (policy,) = policies.policies
    assert policy.name == "defaults"
    assert policy.match.namespaces == ("team-*",)
    assert policy.exclude.users == ("system:serviceaccount:ci:*",)
    (rule,) = policy.rules
    assert (rule.name, rule.key, rule.mutates, rule.source) == ("cpu", "resources", True, "test.yaml:13")
    assert len(policies.digest) == 64


def test_a_typo_names_file_line_and_field_path() -> None:
    text = GOOD.replace("      resources:\n        defaults:", "      resources:\n        requets:")
    issues = _issues(text)
    assert (
        "p.yaml:15: spec.rules[0].resources.requets: unknown field "
        "(expected one of: defaults, initContainers, whenRequestExceedsLimit)"
    ) in issues
    assert "p.yaml:14: spec.rules[0].resources: 'defaults' is required" in issues


def test_every_error_of_a_load_is_reported_at_once() -> None:
    broken = GOOD.replace("kind: Policy", "kind: Policy\nextra: 1").replace("100m", "lots")
    other = GOOD.replace("name: defaults", "name: Not_A_Name")
    with pytest.raises(PolicyError) as caught:
        parse_sources([("a.yaml", broken), ("b.yaml", other)])
    text = str(caught.value)
    assert "a.yaml:3: extra: unknown field" in text
    assert "b.yaml:4: metadata.name: must match" in text


def test_semantic_errors_carry_the_line_too() -> None:
    issues = _issues(GOOD.replace('cpu: {request: 100m, limit: "1"}', 'cpu: {request: "2", limit: "1"}'))
    assert issues == ["p.yaml:16: spec.rules[0].resources.defaults.cpu: request 2 exceeds limit 1"]
    issues = _issues(GOOD.replace('limit: "1"', "limit: 1 cpu"))
    assert issues == [
        "p.yaml:16: spec.rules[0].resources.defaults.cpu.limit: must be a quantity such as 100m or 256Mi "
        "(got '1 cpu')"
    ]


def test_type_errors_say_what_was_expected() -> None:
    issues = _issues(GOOD.replace('namespaces: ["team-*"]', "namespaces: team-a"))
    assert issues == ["p.yaml:7: spec.match.namespaces: must be an array (got 'team-a')"]


def test_a_rule_needs_exactly_one_type() -> None:
    text = GOOD.replace("    - name: cpu\n", "    - name: cpu\n      requireRequests: {}\n")
    assert _issues(text) == [
        "p.yaml:13: spec.rules[0]: must have exactly one rule type "
        f"({_rule_types()}); got requireRequests, resources"
    ]


def _rule_types() -> str:
    from webhook.mutators import MUTATORS
    from webhook.validators import VALIDATORS

    return ", ".join(m.KEY for m in (*MUTATORS, *VALIDATORS))


def test_mutations_take_no_action() -> None:
    text = GOOD.replace("    - name: cpu\n", "    - name: cpu\n      action: warn\n")
    assert _issues(text) == [
        "p.yaml:14: spec.rules[0].action: only validation rules take an action; mutations always apply"
    ]


def test_yaml_syntax_errors_and_duplicate_keys() -> None:
    assert _issues("a: [1, 2\nb: 3\n")[0].startswith("p.yaml:2: invalid YAML")
    issues = _issues(GOOD.replace("kind: Policy", "kind: Policy\nkind: Policy"))
    assert "p.yaml:3: kind: duplicate key" in issues


def test_duplicate_policy_names_across_files() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_sources([("a.yaml", GOOD), ("b.yaml", GOOD)])
    assert str(caught.value) == "b.yaml:1: metadata.name: duplicate name 'defaults' (first at a.yaml:1)"


def test_directory_skips_hidden_entries_and_test_files(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(GOOD)
    (tmp_path / "one-test.yaml").write_text("not: a policy")
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "x.yaml").write_text("broken: [")
    (tmp_path / "notes.txt").write_text("ignored")
    assert load_policies(tmp_path).names == ("defaults",)


def test_missing_path_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file or directory"):
        load_policies(tmp_path / "nope")


def test_digest_changes_with_content() -> None:
    assert policy_text(GOOD).digest != policy_text(GOOD.replace("100m", "200m")).digest


def test_the_shipped_policies_load() -> None:
    assert "requests-required" in load_policies(POLICIES).names


def test_published_schema_is_up_to_date() -> None:
    assert json.loads(PUBLISHED.read_text()) == json.loads(render()), "run: podgate schema > " + str(
        PUBLISHED
    )


def test_policy_files_name_the_published_schema() -> None:
    for file in POLICIES.glob("*.yaml"):
        assert file.read_text().startswith(
            "# yaml-language-server: $schema=../webhook/schema/policy.schema.json"
        )
