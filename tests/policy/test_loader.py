import json
import time
from pathlib import Path

import pytest

from tests.conftest import POLICIES, policy_text
from webhook import load_policies
from webhook.errors import PolicyError
from webhook.policy.loader import parse_sources
from webhook.policy.schema import PUBLISHED, render

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
        "(expected one of: defaults, exemptImages, initContainers, whenRequestExceedsLimit)"
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
    from webhook.rules.mutators import MUTATORS
    from webhook.rules.validators import VALIDATORS

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


# Found by tests/test_fuzz_policies.py: each of these used to escape as a traceback (AttributeError,
# ValueError, ReaderError, RecursionError), hang (aliases expanded), or carry no line.
@pytest.mark.parametrize(
    ("text", "issue"),
    [
        (
            GOOD.replace("apiVersion: podgate", "apiVersion: !!timestamp podgate"),
            "p.yaml:1: tag tag:yaml.org,2002:timestamp is not allowed: write a plain value",
        ),
        (
            GOOD + "extra: !!int abc\n",
            "p.yaml:17: tag tag:yaml.org,2002:int is not allowed: write a plain value",
        ),
        (
            GOOD + "extra: !!python/object:os.system x\n",
            "p.yaml:17: tag tag:yaml.org,2002:python/object:os.system is not allowed: write a plain value",
        ),
        (
            GOOD.replace("kind: Policy", "kind: Policy\n1: one"),
            "p.yaml:3: keys must be strings: quote this one",
        ),
        (
            GOOD.replace("kind: Policy", "kind: Po\x00licy"),
            "p.yaml:2: invalid YAML: character U+0000 is not allowed",
        ),
        (GOOD + "deep: " + "[" * 5000 + "]" * 5000 + "\n", "p.yaml:17: nested deeper than 64 levels"),
        (GOOD + "r: &r [*r]\n", "p.yaml:17: alias *r refers to the node it is in"),
    ],
    ids=["timestamp-tag", "int-tag", "python-tag", "int-key", "nul", "deep", "recursive-alias"],
)
def test_yaml_that_would_crash_or_run_away_is_an_issue_with_a_line(text: str, issue: str) -> None:
    assert _issues(text) == [issue]


def test_a_billion_laughs_is_refused_without_expanding_it() -> None:
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    started = time.monotonic()
    issues = _issues(GOOD + "---\n" + bomb)
    assert time.monotonic() - started < 1.0
    assert issues == ["p.yaml:22: the file has over 100,000 values, counting what aliases repeat"]


def test_anchors_aliases_merge_keys_and_str_tags_still_load() -> None:
    text = GOOD.replace(
        "  rules:\n    - name: cpu\n", "  rules:\n    - &rule\n      name: !!str cpu\n"
    ).replace('          cpu: {request: 100m, limit: "1"}', "          <<: {cpu: {request: 100m}}")
    (policy,) = policy_text(text).policies
    assert policy.rules[0].name == "cpu"


def test_a_file_that_is_not_utf8_says_which_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_bytes(GOOD.encode().replace(b"kind: Policy", b"kind: Pol\xffcy"))
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{tmp_path / 'p.yaml'}:2: not UTF-8: byte 0xff at column 10 cannot be decoded"
    ]


def test_an_issue_is_one_line_whatever_a_key_holds() -> None:
    # `podgate check` prints one issue per line; a key such as "\r" used to split it in two.
    assert _issues(GOOD.replace("kind: Policy", 'kind: Policy\n"\\r": 1')) == [
        "p.yaml:3: \\r: unknown field (expected one of: apiVersion, kind, metadata, spec)"
    ]


@pytest.mark.parametrize(
    "text", ["", "# every policy was commented out\n", "---\n", "---\n# only a comment\n---\n"]
)
def test_a_file_without_a_document_is_an_error_unless_empty_is_allowed(text: str) -> None:
    # `: > policies/resources.yaml` must not silently switch the resource policies off.
    assert _issues(text) == ["p.yaml:1: holds no policy document: delete the file to remove its policies"]
    assert parse_sources([("p.yaml", text)], allow_empty=True).policies == ()


def test_an_empty_file_beside_good_ones_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "resources.yaml").write_text("")
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/resources.yaml:1: holds no policy document: delete the file to remove its policies"
    )
    assert load_policies(tmp_path, allow_empty=True).names == ("defaults",)


def test_a_directory_without_policy_files_is_an_error_unless_empty_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("policies go here")
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: no policy files (*.yaml, *.yml): with no policies podgate enforces nothing"
    )
    assert load_policies(tmp_path, allow_empty=True).policies == ()


NAMESPACE_SELECTORS = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: by-namespace}
spec:
  match:
    namespaceSelector: {matchLabels: {env: test}}
    any:
      - namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}
  exclude:
    namespaceSelector: {matchLabels: {frozen: "yes"}}
  rules: [{name: r, requireRequests: {}}]
"""


def test_namespace_selectors_load_in_match_alternatives_and_exclude() -> None:
    (policy,) = policy_text(NAMESPACE_SELECTORS).policies
    assert str(policy.match.namespace_selector) == "env in (test)"
    assert str(policy.match.any[0].namespace_selector) == "team"
    assert str(policy.exclude.namespace_selector) == "frozen in (yes)"
    assert policy.needs_namespace_labels and policy_text(NAMESPACE_SELECTORS).needs_namespace_labels
    assert not policy_text(GOOD).needs_namespace_labels


def test_a_broken_namespace_selector_names_its_line() -> None:
    broken = NAMESPACE_SELECTORS.replace("key: team, operator: Exists", "key: team, operator: In")
    with pytest.raises(PolicyError) as caught:
        parse_sources([("p.yaml", broken)])
    assert [str(i) for i in caught.value.issues] == [
        "p.yaml:8: spec.match.any[0].namespaceSelector: matchExpressions[0].values: "
        "must be non-empty for operator In"
    ]
