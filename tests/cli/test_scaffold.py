"""`podgate scaffold`: valid Kubernetes objects, the policies' defaults in them, clear flag errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import POLICIES
from webhook import load_policies
from webhook.cli import main
from webhook.cli.scaffolding import App, deployment, settle
from webhook.kube.selector import parse_selector

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def scaffold(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["scaffold", *argv, "--policies", str(POLICIES)])
    out, err = capsys.readouterr()
    return code, yaml.safe_load(out) if out else None, err


def test_the_default_deployment_and_service_are_valid_and_belong_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, deploy, err = scaffold(
        capsys, "deployment", "--name", "web", "--image", "nginx", "--version", "1.27"
    )
    assert (code, err) == (0, "")
    code, service, err = scaffold(capsys, "service", "--name", "web")
    assert (code, err) == (0, "")
    for obj in (deploy, service):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)

    template = deploy["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    assert pod_labels == {"app.kubernetes.io/name": "web", "app.kubernetes.io/env": "test"}
    assert parse_selector(deploy["spec"]["selector"]).matches(pod_labels)
    assert all(pod_labels.get(key) == value for key, value in service["spec"]["selector"].items())
    [container] = template["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 80, "protocol": "TCP"}]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    # The defaults come from policies/resources.yaml, not from the scaffold.
    assert container["resources"] == {
        "limits": {"cpu": "100m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    assert "namespace" not in deploy["metadata"]


def test_the_printed_deployment_is_settled(capsys: pytest.CaptureFixture[str]) -> None:
    """Through the policies again, nothing changes: every pod-level default is already in the template."""
    code, deploy, _ = scaffold(capsys, "deployment", "--name", "web", "--image", "nginx", "--version", "1.27")
    assert code == 0
    again, decision = settle(deploy, load_policies(POLICIES))
    assert (decision.patch, decision.allowed) == ((), True)
    assert again == deploy


def test_the_policies_decide_the_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    text = (
        (POLICIES / "resources.yaml")
        .read_text()
        .replace(
            "memory:\n            request: 256Mi\n            limit: 256Mi",
            "memory:\n            request: 64Mi\n            limit: 64Mi",
        )
    )
    assert "64Mi" in text
    (policies / "resources.yaml").write_text(text)
    code = main(
        [
            "scaffold",
            "deployment",
            "--name",
            "web",
            "--image",
            "nginx",
            "--version",
            "1",
            "--policies",
            str(policies),
        ]
    )
    deploy = yaml.safe_load(capsys.readouterr().out)
    assert code == 0
    assert deploy["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "64Mi"


def test_flags_set_resources_replicas_port_and_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    code, deploy, _ = scaffold(
        capsys,
        "deployment",
        "--name",
        "api",
        "--image",
        "registry.example:5000/team/api",
        "--version",
        "2.1.0",
        "--env",
        "prod",
        "--replicaCount",
        "3",
        "--cpu",
        "250m",
        "--memory",
        "512Mi",
        "--limitCPU",
        "1",
        "--port",
        "8080",
        "-n",
        "payments",
    )
    assert code == 0
    assert deploy["metadata"]["namespace"] == "payments"
    assert deploy["spec"]["replicas"] == 3
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example:5000/team/api:2.1.0"
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert container["ports"][0]["containerPort"] == 8080


def test_outside_test_without_resources_the_cluster_would_deny(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = scaffold(
        capsys, "deployment", "--name", "web", "--image", "nginx", "--version", "1", "--env", "prod"
    )
    assert (code, out) == (1, None)
    assert "error: the cluster would deny this Deployment: requests-required.cpu-and-memory:" in err


def test_a_missing_or_latest_version_warns(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ((), ("--version", "latest")):
        code, deploy, err = scaffold(capsys, "deployment", "--name", "web", "--image", "nginx", *argv)
        assert code == 0
        assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:latest"
        assert "warning: image nginx:latest: no version" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deployment", "--image", "nginx"], "the following arguments are required: --name"),
        (["deployment", "--name", "web"], "the following arguments are required: --image"),
        (["deployment", "--name", "web", "--image", "nginx", "-c", "2"], "unrecognized arguments: -c 2"),
        (["service", "--name", "web", "--selector", "x"], "unrecognized arguments: --selector x"),
    ],
)
def test_missing_and_unknown_flags_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["scaffold", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "Web"], "error: --name must be a DNS-1123 label: lower-case letters, digits, '-'"),
        (["--name", "web", "--cpu", "lots"], "error: --request-cpu must be a quantity such as 100m or 256Mi"),
        (
            ["--name", "web", "--request-cpu", "2", "--limit-cpu", "1"],
            "the cpu request 2 exceeds its limit 1",
        ),
        (
            ["--name", "web", "--image", "nginx:1.27", "--version", "1.27"],
            "error: --image nginx:1.27 already has a tag or digest: drop --version",
        ),
        (["--name", "web", "--port", "0"], "error: --port must be between 1 and 65535 (got 0)"),
    ],
)
def test_flag_values_are_checked(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    if "--image" not in argv:
        argv = [*argv, "--image", "nginx", "--version", "1"]
    code, out, err = scaffold(capsys, "deployment", *argv)
    assert (code, out) == (2, None)
    assert message in err


def test_service_type_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, service, _ = scaffold(
        capsys, "service", "--serviceName", "web", "--serviceType", "NodePort", "--port", "8080"
    )
    assert code == 0
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 8080
    code, _, err = scaffold(capsys, "service", "--name", "web", "--type", "ExternalName")
    assert code == 2
    assert "--type must be one of ClusterIP, NodePort, LoadBalancer (got 'ExternalName')" in err


def test_output_dir_gets_one_file_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    for argv in (["deployment", "--image", "nginx", "--version", "1"], ["service"]):
        assert main(["scaffold", *argv, "--name", "web", "-o", str(out), "--policies", str(POLICIES)]) == 0
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in out.iterdir()) == ["deployment.yaml", "service.yaml"]
    assert yaml.safe_load((out / "service.yaml").read_text())["kind"] == "Service"


def test_deployment_object_without_flags_for_resources_leaves_them_to_the_policies() -> None:
    container = deployment(App(name="web", image="nginx"))["spec"]["template"]["spec"]["containers"][0]
    assert "resources" not in container
    assert container["image"] == "nginx:latest"


def test_settle_writes_only_what_the_pods_get_into_the_template() -> None:
    """Labels the controller adds (pod-template-hash) and apiserver pod defaults stay out of it."""
    obj = deployment(App(name="web", image="nginx", version="1"))
    obj["spec"]["template"]["metadata"]["labels"] = {"app.kubernetes.io/env": "test"}
    stored, decision = settle(obj, load_policies(POLICIES))
    assert decision.stored_changes
    assert decision.pod_changes == ()
    template = stored["spec"]["template"]
    # standard-labels names the pods after their workload.
    assert template["metadata"]["labels"] == {
        "app.kubernetes.io/env": "test",
        "app.kubernetes.io/name": "web",
    }
    assert "serviceAccountName" not in template["spec"]
    assert [t["tolerationSeconds"] for t in template["spec"]["tolerations"]] == [30, 30]
    assert [e["name"] for e in template["spec"]["containers"][0]["env"]][:2] == [
        "MY_NODE_NAME",
        "MY_POD_NAME",
    ]


def test_changes_only_pods_get_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "resources.yaml").write_text((POLICIES / "resources.yaml").read_text())
    text = (POLICIES / "downward-env.yaml").read_text()
    assert text.count("\nspec:\n") == 1
    (policies / "env.yaml").write_text(text.replace("\nspec:\n", "\nspec:\n  match: {kinds: [Pod]}\n"))
    argv = ["scaffold", "deployment", "--name", "web", "--image", "nginx", "--version", "1"]
    assert main([*argv, "--policies", str(policies)]) == 0
    out, err = capsys.readouterr()
    assert "MY_POD_NAME" not in out
    assert err.startswith("note: pods of Deployment web will also get:\n")
    assert '  downward-env.pod-identity: container "web": env MY_POD_NAME set from metadata.name\n' in err
