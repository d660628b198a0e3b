import io
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, POLICIES, fixture_review
from webhook.cli import main

RESOURCES = str(POLICIES / "resources.yaml")


def _fixture(prefix: str) -> str:
    return str(next(FIXTURES.glob(f"{prefix}_*.json")))


def test_denied_review_exits_1_naming_container_and_resources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "-f", _fixture("0011"), "--policies", RESOURCES]) == 1
    err = capsys.readouterr().err
    assert "DENIED" in err
    assert 'container "sidecar-logger" is missing cpu and memory requests' in err


def test_test_labelled_pod_is_printed_with_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    review = fixture_review("0001")
    review["request"]["object"]["metadata"]["labels"] = {"app.kubernetes.io/env": "test"}
    file = tmp_path / "review.json"
    file.write_text(json.dumps(review))
    assert main(["apply", "-f", str(file), "--policies", RESOURCES, "--explain"]) == 0
    out, err = capsys.readouterr()
    pod = yaml.safe_load(out)
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "100m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    assert "test-defaults.guaranteed-resources: /spec/containers/0/resources/limits/cpu" in err


def test_limits_only_pod_is_admitted_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "-f", _fixture("0005"), "--policies", RESOURCES, "-o", "patch"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []
    assert "admitted (unchanged)" in err


MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app.kubernetes.io/env: test}
spec:
  containers:
    - name: app
      image: nginx
      resources:
        limits: {cpu: 50m}
"""


def test_a_plain_manifest_is_defaulted_like_the_apiserver(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(MANIFEST))
    assert main(["apply", "-f", "-", "--policies", RESOURCES, "-n", "team-a", "-o", "json"]) == 0
    pod = json.loads(capsys.readouterr().out)
    resources = pod["spec"]["containers"][0]["resources"]
    # The apiserver copies the limit into the missing request; podgate fills memory.
    assert resources == {
        "limits": {"cpu": "50m", "memory": "256Mi"},
        "requests": {"cpu": "50m", "memory": "256Mi"},
    }
    assert pod["metadata"]["namespace"] == "team-a"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: [", "invalid YAML"),
        ("just: data", "not a Kubernetes object (no kind)"),
        ("kind: Pod", "no apiVersion"),
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    file = tmp_path / "in.yaml"
    file.write_text(content)
    assert main(["apply", "-f", str(file), "--policies", RESOURCES]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_and_broken_policies_exit_2(tmp_path: Path) -> None:
    assert main(["apply", "-f", str(tmp_path / "nope.yaml"), "--policies", RESOURCES]) == 2
    (tmp_path / "p.yaml").write_text("kind: [")
    assert main(["apply", "-f", _fixture("0001"), "--policies", str(tmp_path / "p.yaml")]) == 2


NULLS = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: team-a
  labels: {app.kubernetes.io/env: test, owner: null}
spec:
  nodeSelector: {disk: null}
  securityContext: null
  containers:
    - name: app
      image: nginx
      ports: [{name: http, containerPort: 8080}]
      livenessProbe:
      readinessProbe: null
      resources:
      env: [{name: MODE, value: null}]
    - name: sidecar
      image: busybox
      resources:
        requests: {cpu: null}
        limits:
"""


def test_empty_fields_are_dropped_as_the_apiserver_decodes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What kube-apiserver 1.36 hands the webhooks for this manifest (kubectl create --dry-run=server):
    # null fields are gone, except in maps of strings ("") and of quantities ("0").
    file = tmp_path / "nulls.yaml"
    file.write_text(NULLS)
    policies = str(POLICIES)
    assert main(["apply", "-f", str(file), "--policies", policies, "-o", "json", "--explain"]) == 0
    pod = json.loads(capsys.readouterr().out)
    assert pod["metadata"]["labels"]["owner"] == ""
    assert pod["spec"]["nodeSelector"] == {"disk": ""}
    assert "securityContext" not in pod["spec"]
    app, sidecar = pod["spec"]["containers"]
    # Empty probes and resources are no probes and no resources: the policies fill them in.
    assert (
        app["livenessProbe"]["httpGet"]
        == app["readinessProbe"]["httpGet"]
        == {"path": "/", "port": "http", "scheme": "HTTP"}
    )
    assert app["resources"] == {
        "limits": {"cpu": "100m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    assert {"name": "MODE"} in app["env"]
    assert sidecar["resources"]["requests"]["cpu"] == "0"


def test_the_objects_own_namespace_stands_and_a_conflicting_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "pod.yaml"
    file.write_text(MANIFEST.replace("  name: web\n", "  name: web\n  namespace: team-a\n"))
    for argv in ([], ["-n", "team-a"]):
        assert main(["apply", "-f", str(file), "--policies", RESOURCES, "-o", "json", *argv]) == 0
        assert json.loads(capsys.readouterr().out)["metadata"]["namespace"] == "team-a"

    assert main(["apply", "-f", str(file), "--policies", RESOURCES, "-n", "team-b"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f'error: {file}: the namespace from the provided object "team-a" does not match the namespace '
        "\"team-b\". You must pass '--namespace=team-a' to perform this operation.\n"
    )
