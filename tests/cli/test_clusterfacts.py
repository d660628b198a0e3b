"""`podgate apply` and `podgate test` with cluster facts: Namespaces and LimitRanges, --namespace-labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from webhook.cli import main
from webhook.cli.clusterfacts import parse_namespace_labels
from webhook.cli.manifests import InputError

POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: labelled-test}
spec:
  match: {namespaceSelector: {matchLabels: {env: test}}}
  rules:
    - name: defaults
      resources: {defaults: {cpu: {request: 100m, limit: "1"}, memory: {request: 256Mi, limit: 256Mi}}}
---
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: requests}
spec:
  rules: [{name: required, requireRequests: {}}]
"""
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team-a}
spec:
  containers: [{name: app, image: nginx}]
"""
NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {env: test}}
"""
LIMITS = """\
apiVersion: v1
kind: LimitRange
metadata: {name: small, namespace: team-a}
spec:
  limits: [{type: Container, max: {memory: 128Mi}, maxLimitRequestRatio: {cpu: "4"}}]
"""


@pytest.fixture
def policy(tmp_path: Path) -> str:
    (tmp_path / "policy.yaml").write_text(POLICY)
    return str(tmp_path / "policy.yaml")


def write(tmp_path: Path, name: str, *documents: str) -> str:
    (tmp_path / name).write_text("---\n".join(documents))
    return str(tmp_path / name)


def test_unknown_namespace_labels_leave_the_policy_out_with_a_hint(
    tmp_path: Path, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", "-f", write(tmp_path, "pod.yaml", POD), "--policies", policy]) == 1
    assert (
        "  warning: labelled-test: not applied: labels of namespace team-a are unknown: add its Namespace "
        "to the input, or give --namespace-labels or --kubeconfig (docs/cluster.md)"
    ) in capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("how", ["namespace-object", "flag"])
def test_namespace_labels_from_the_input_or_the_flag(
    tmp_path: Path, policy: str, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if how == "flag":
        args = ["-f", write(tmp_path, "pod.yaml", POD), "--namespace-labels", "team-a=env=test,team=a"]
    else:
        # The Namespace comes after the pod, in another file: every object is judged with it.
        args = ["-f", write(tmp_path, "a-pod.yaml", POD), "-f", write(tmp_path, "b-ns.yaml", NAMESPACE)]
    assert main(["apply", *args, "--policies", policy, "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pod = out["items"][0] if how == "namespace-object" else out
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}


def test_the_flag_wins_over_the_input(tmp_path: Path, policy: str) -> None:
    manifests = write(tmp_path, "all.yaml", NAMESPACE, POD)
    assert main(["apply", "-f", manifests, "--policies", policy, "--namespace-labels", "team-a="]) == 1


def test_a_limit_range_in_the_input_is_applied_then_fitted(
    tmp_path: Path, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = write(tmp_path, "all.yaml", NAMESPACE, LIMITS, POD)
    assert main(["apply", "-f", manifests, "--policies", policy, "-o", "json", "--explain"]) == 0
    out, err = capsys.readouterr()
    pod = json.loads(out)["items"][2]
    # The LimitRanger plugin's defaults first (memory), then podgate's, fitted to the ratio (cpu).
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "128Mi", "cpu": "100m"},
        "limits": {"memory": "128Mi", "cpu": "400m"},
    }
    assert (
        'container "app": cpu limit set to 400m, not the default 1: '
        "LimitRange small's maxLimitRequestRatio is 4 and the request is 100m"
    ) in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("team-a", "--namespace-labels 'team-a': must be NAMESPACE=KEY=VALUE,... (NAMESPACE= for none)"),
        ("Team=a=b", "--namespace-labels 'Team=a=b': namespace 'Team' must be at most 63 lower-case letters, "
         "digits or '-', starting and ending alphanumeric"),
        ("ns=env", "--namespace-labels 'ns=env': 'env': must be KEY=VALUE"),
        ("ns=env=a b", "--namespace-labels 'ns=env=a b': 'env=a b': value 'a b' must be at most 63 "
         "characters "
         "of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit"),
    ],
)  # fmt: skip
def test_bad_namespace_labels_say_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_namespace_labels([value])
    assert str(caught.value) == message


def test_namespace_labels_include_the_name_label() -> None:
    assert parse_namespace_labels(["ns=a=1,b=2", "other="]) == {
        "ns": {"kubernetes.io/metadata.name": "ns", "a": "1", "b": "2"},
        "other": {"kubernetes.io/metadata.name": "other"},
    }


def test_policy_tests_take_namespaces_from_the_case_and_do_not_judge_them(
    tmp_path: Path, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {
        "apiVersion": "podgate.io/v1alpha1",
        "kind": "PolicyTest",
        "metadata": {"name": "labelled"},
        "spec": {
            "policies": [policy],
            "cases": [
                {"name": "labelled", "file": "manifests.yaml", "expect": {"outcome": "admitted"}},
                {"name": "unlabelled", "manifest": yaml.safe_load(POD), "expect": {"outcome": "denied"}},
            ],
        },
    }
    write(tmp_path, "manifests.yaml", NAMESPACE, POD)
    (tmp_path / "labelled-test.yaml").write_text(yaml.safe_dump(case))
    assert main(["test", str(tmp_path / "labelled-test.yaml")]) == 0, capsys.readouterr().out
    assert main(["test", str(tmp_path / "labelled-test.yaml"), "--namespace-labels", "team-a=env=test"]) == 1
