"""The policy test format (webhook/cli/policytest): schema, discovery, load errors, field paths, runner."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import POLICIES, policy_text
from webhook.cli.policytest import PolicyCache, TestFileError, discover, load_suites, run_suite
from webhook.cli.policytest.fieldpath import ItemWhere, PathError, lookup, parse_path
from webhook.cli.policytest.runner import Result
from webhook.cli.policytest.suite import SCHEMA_FILE

RESOURCES = POLICIES / "resources.yaml"
POD = "{apiVersion: v1, kind: Pod, metadata: {name: app}, spec: {containers: [{name: app, image: nginx}]}}"


def write_test(directory: Path, cases: str, *, name: str = "t-test.yaml", policies: str = "") -> Path:
    """A test file whose cases are `cases` (YAML, indented as list items under spec.cases)."""
    policies = policies or f"[{RESOURCES}]"
    text = (
        "apiVersion: podgate.io/v1alpha1\nkind: PolicyTest\nmetadata: {name: t}\n"
        f"spec:\n  policies: {policies}\n  cases:\n" + textwrap.indent(textwrap.dedent(cases), "    ")
    )
    file = directory / name
    file.write_text(text)
    return file


def errors_of(file: Path) -> list[str]:
    with pytest.raises(TestFileError) as caught:
        load_suites(file)
    return [str(issue) for issue in caught.value.issues]


def run(file: Path) -> list[Result]:
    cache = PolicyCache()
    return [r for suite in load_suites(file) for r in run_suite(suite, cache.get(suite.policies))]


# --- the schema and the shipped tests


def test_the_published_schema_validates_every_shipped_test_file() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    files = discover([str(POLICIES)])
    assert POLICIES / "tests" / "resources-test.yaml" in files
    for file in files:
        for document in yaml.safe_load_all(file.read_text()):
            jsonschema.validate(document, schema)


def test_every_default_policy_file_has_tests() -> None:
    tested = {file.name.removesuffix("-test.yaml") for file in discover([str(POLICIES)])}
    assert {p.stem for p in POLICIES.glob("*.yaml")} <= tested


def test_the_shipped_tests_pass() -> None:
    results = [r for file in discover([str(POLICIES)]) for r in run(file)]
    assert results
    assert [(r.where, r.failures) for r in results if not r.passed] == []


def test_discovery_takes_test_suffixes_and_tests_folders_but_not_their_subfolders(tmp_path: Path) -> None:
    for name in ("a-test.yaml", "nested/b-test.yml", "tests/c.yaml", "tests/manifests/pod.yaml", "d.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = [str(p.relative_to(tmp_path)) for p in discover([str(tmp_path)])]
    assert found == ["a-test.yaml", "nested/b-test.yml", "tests/c.yaml"]
    assert discover([str(tmp_path / "d.yaml")]) == [tmp_path / "d.yaml"]


# --- load errors: every one, with file:line


def test_a_missing_manifest_file_is_reported_at_its_line(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        """\
        - name: gone
          file: manifests/gone.yaml
          expect: {outcome: admitted}
        """,
    )
    assert errors_of(file) == [f"{file}:8: spec.cases[0].file: no such file: {tmp_path}/manifests/gone.yaml"]


def test_bad_expectations_are_all_reported_with_lines(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        f"""\
        - name: one
          manifest: {POD}
          expect:
            outcome: admitted
            messages: [boom]
            fields:
              - {{path: "spec..x", value: 1}}
              - {{path: "spec.x", value: 1, absent: true}}
        - name: one
          file: {tmp_path}/pod.yaml
          expect: {{outcome: admitted}}
        """,
    )
    assert errors_of(file) == [
        f"{file}:11: spec.cases[0].expect.messages: "
        "admitted means no denial and no warning: no message to match",
        f"{file}:13: spec.cases[0].expect.fields[0].path: cannot read '..x' in 'spec..x'",
        f"{file}:14: spec.cases[0].expect.fields[1]: needs exactly one of value or absent: true",
        f"{file}:15: spec.cases[1].name: duplicate case name 'one'",
        f"{file}:16: spec.cases[1].file: no such file: {tmp_path}/pod.yaml",
    ]


def test_schema_errors_name_file_line_and_field(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        """\
        - name: typo
          namespce: x
          expect: {outcome: allowed}
        """,
    )
    assert errors_of(file) == [
        f"{file}:8: spec.cases[0].namespce: unknown field (expected one of: "
        "description, expect, file, groups, manifest, name, namespace, operation, user)",
        f"{file}:9: spec.cases[0].expect.outcome: "
        "must be one of 'admitted', 'denied', 'warned' (got 'allowed')",
    ]


def test_a_case_needs_exactly_one_input(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        f"""\
        - name: none
          expect: {{outcome: admitted}}
        - name: both
          manifest: {POD}
          file: pod.yaml
          expect: {{outcome: admitted}}
        """,
    )
    assert errors_of(file) == [
        f"{file}:7: spec.cases[0]: needs exactly one of manifest or file",
        f"{file}:9: spec.cases[1]: needs exactly one of manifest or file (got both)",
    ]


def test_whole_object_expectations_need_a_single_object(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(f"{POD}\n---\n{POD}\n")
    file = write_test(
        tmp_path,
        """\
        - name: two
          file: two.yaml
          expect: {outcome: denied, patch: []}
        """,
    )
    assert errors_of(file) == [
        f"{file}:9: spec.cases[0].expect.patch: file holds 2 objects; an expected patch needs exactly one"
    ]


def test_an_admission_review_keeps_its_own_request_fields(tmp_path: Path) -> None:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "1"}}
    (tmp_path / "review.json").write_text(json.dumps(review))
    file = write_test(
        tmp_path,
        """\
        - name: review
          file: review.json
          namespace: elsewhere
          expect: {outcome: admitted}
        """,
    )
    assert errors_of(file) == [
        f"{file}:9: spec.cases[0].namespace: "
        "an AdmissionReview is sent as captured: it sets its own namespace"
    ]


def test_missing_policies_and_yaml_errors(tmp_path: Path) -> None:
    file = write_test(
        tmp_path, "- {name: x, manifest: {}, expect: {outcome: admitted}}\n", policies="[nope.yaml]"
    )
    assert f"{file}:5: spec.policies[0]: no such file or directory: {tmp_path}/nope.yaml" in errors_of(file)
    broken = tmp_path / "broken-test.yaml"
    broken.write_text("spec: [\n")
    assert errors_of(broken)[0].startswith(f"{broken}:2: invalid YAML")


# --- field paths


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("spec.containers[0].image", ("spec", "containers", 0, "image")),
        ('metadata.labels["app.kubernetes.io/env"]', ("metadata", "labels", "app.kubernetes.io/env")),
        (
            "spec.containers[name=app].env[name=POD_IP]",
            ("spec", "containers", ItemWhere("name", "app"), "env", ItemWhere("name", "POD_IP")),
        ),
        ("/metadata/labels/app.kubernetes.io~1env", ("metadata", "labels", "app.kubernetes.io/env")),
        ("/spec/containers/0", ("spec", "containers", 0)),
    ],
)
def test_field_paths(text: str, steps: tuple[object, ...]) -> None:
    assert parse_path(text) == steps


@pytest.mark.parametrize("text", ["[0]", "spec.", "spec[x", "a['b]"])
def test_bad_field_paths(text: str) -> None:
    with pytest.raises(PathError):
        parse_path(text)


def test_lookup_tells_missing_from_null() -> None:
    pod = {"spec": {"containers": [{"name": "app", "image": None}]}}
    assert lookup(pod, parse_path("spec.containers[name=app].image")) == (True, None)
    assert lookup(pod, parse_path("spec.containers[name=web].image")) == (False, None)
    assert lookup(pod, parse_path("spec.containers[3]")) == (False, None)


# --- the runner: every expectation can fail


def test_a_passing_case_reports_policies_and_changes(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        f"""\
        - name: test pod
          namespace: team-test
          manifest: {POD}
          expect:
            outcome: admitted
            fields:
              - {{path: "spec.containers[0].resources.requests.cpu", value: 100m}}
        """,
    )
    [result] = run(file)
    assert (result.passed, result.resource, result.policies) == (
        True,
        "Pod team-test/app",
        ("test-defaults",),
    )
    assert (result.expected, result.got) == ("admitted + 1 field", "admitted (4 changes)")


def test_a_wrong_mutation_expectation_fails_with_a_diff(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        f"""\
        - name: test pod
          namespace: team-test
          manifest: {POD}
          expect:
            outcome: admitted
            patch:
              - op: add
                path: /spec/containers/0/resources
                value: {{limits: {{cpu: 200m, memory: 256Mi}}, requests: {{cpu: 100m, memory: 256Mi}}}}
            fields:
              - {{path: "spec.containers[0].resources.limits.cpu", value: 200m}}
              - {{path: "spec.containers[0].resources.limits", value: {{cpu: 100m}}}}
              - {{path: "spec.containers[0].resources", absent: true}}
              - {{path: "spec.nodeName", value: x}}
        """,
    )
    [result] = run(file)
    diff = "\n".join(
        f"    {line}"
        for line in [
            "--- expected",
            "+++ got",
            "@@ -2,7 +2,7 @@",
            "   path: /spec/containers/0/resources",
            "   value:",
            "     limits:",
            "-      cpu: 200m",
            "+      cpu: 100m",
            "       memory: 256Mi",
            "     requests:",
            "       cpu: 100m",
        ]
    )
    assert result.failures == (
        "patch differs:\n" + diff,
        'spec.containers[0].resources.limits.cpu: expected "200m", got "100m"',
        "spec.containers[0].resources.limits differs:\n"
        "    --- expected\n    +++ got\n    @@ -1 +1,2 @@\n     cpu: 100m\n    +memory: 256Mi",
        'spec.containers[0].resources: expected absent, got {"limits": {"cpu": "100m", "memory": "256Mi"}, '
        '"requests": {"cpu": "100m", "memory": "256Mi"}}',
        'spec.nodeName: expected "x", got no such field',
    )


def test_a_wrong_whole_object_fails_with_a_diff(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        f"""\
        - name: prod pod
          namespace: prod
          manifest: {POD}
          expect:
            outcome: denied
            object:
              apiVersion: v1
              kind: Pod
              metadata: {{name: app, namespace: prod}}
              spec:
                containers: [{{name: app, image: nginx}}]
        """,
    )
    [result] = run(file)
    # The apiserver's default tolerations are part of the stored object.
    assert result.failures[0].startswith("object differs:\n    --- expected\n    +++ got\n")
    assert "    +  - effect: NoExecute" in result.failures[0]


def test_outcome_and_message_mismatches_show_what_was_said(tmp_path: Path) -> None:
    file = write_test(
        tmp_path,
        f"""\
        - name: prod pod
          namespace: prod
          manifest: {POD}
          expect:
            outcome: warned
            messages: [no such words]
        """,
    )
    [result] = run(file)
    said = (
        '\n    requests-required.cpu-and-memory: container "app" is missing cpu and memory requests; '
        "set spec.containers[0].resources.requests (to what the container uses under normal load, "
        "e.g. cpu: 100m, memory: 256Mi; `kubectl top pod` shows it)"
    )
    assert result.failures == (
        "outcome: expected warned, got denied" + said,
        "no message contains 'no such words'" + said,
    )


def test_warn_rules_make_the_outcome_warned(tmp_path: Path) -> None:
    (tmp_path / "warn.yaml").write_text(
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {name: soft}\nspec:\n  rules:\n"
        "    - {name: requests, action: warn, requireRequests: {resources: [cpu]}}\n"
    )
    policy_text((tmp_path / "warn.yaml").read_text())  # a valid policy, or this test proves nothing
    file = write_test(
        tmp_path,
        f"""\
        - name: soft
          manifest: {POD}
          expect:
            outcome: warned
            messages: ['soft.requests: container "app"']
        """,
        policies="[warn.yaml]",
    )
    [result] = run(file)
    assert result.passed, result.failures
    assert result.got == "warned (unchanged)"


def test_a_manifest_keeps_its_own_namespace_and_may_not_contradict_the_tests(tmp_path: Path) -> None:
    own = POD.replace("metadata: {name: app}", "metadata: {name: app, namespace: team-test}")
    file = write_test(
        tmp_path,
        f"""\
        - name: the object's namespace
          manifest: {own}
          expect: {{outcome: admitted}}
        """,
    )
    (result,) = run(file)
    assert result.resource == "Pod team-test/app"
    file = write_test(
        tmp_path,
        f"""\
        - name: another namespace
          namespace: prod
          manifest: {own}
          expect: {{outcome: denied}}
        """,
    )
    assert errors_of(file) == [
        f'{file}:9: spec.cases[0].manifest: the namespace from the provided object "team-test" does not '
        'match the namespace "prod" the test sets: the object\'s own namespace stands, as with kubectl'
    ]
