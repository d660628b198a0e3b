"""`podgate render-deploy`: what it writes into deploy/generated/, and every input it refuses."""

from __future__ import annotations

import datetime
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.deploy_support import NOW, SAMPLE_POLICY, SERVER_NAME, new_ca, write_server_cert
from webhook.cli import main, render_deploy
from webhook.errors import PkiError, PodgateError, PolicyError


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    write_server_cert(new_ca(), directory)
    return directory


@pytest.fixture
def certs_valid_today(tmp_path: Path) -> Path:
    """For the command, which reads the real clock rather than NOW."""
    directory = tmp_path / "certs"
    today = datetime.datetime.now(datetime.UTC)
    write_server_cert(
        new_ca(),
        directory,
        not_before=today - datetime.timedelta(days=1),
        not_after=today + datetime.timedelta(days=365),
    )
    return directory


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "defaults.yaml").write_text(SAMPLE_POLICY)
    (directory / "limits.yml").write_text(SAMPLE_POLICY.replace("name: sample", "name: limits"))
    # Beside the policies, and never loaded by the server: not copied either.
    (directory / "README.md").write_text("not a policy")
    (directory / "defaults-test.yaml").write_text("cases: []\n")
    (directory / ".defaults.yaml.swp").write_text("editor state")
    (directory / "tests").mkdir()
    return directory


def render(certs: Path, policies: Path, out: Path, extra_cas: Sequence[Path] = ()) -> render_deploy.Rendered:
    return render_deploy.render(certs, policies, out, now=NOW, extra_cas=extra_cas)


def test_writes_the_tls_files_the_policies_and_the_component(
    certs: Path, policies: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deploy" / "generated"
    rendered = render(certs, policies, out)

    assert rendered.policies == ("defaults.yaml", "limits.yml")
    assert rendered.server_name == SERVER_NAME
    assert rendered.ca_certificates == 1
    assert rendered.warnings == ()
    assert (out / "tls.crt").read_bytes() == (certs / "server.pem").read_bytes()
    assert (out / "tls.key").read_bytes() == (certs / "server-key.pem").read_bytes()
    assert (out / "ca.crt").read_bytes() == (certs / "ca.pem").read_bytes()
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert sorted(p.name for p in (out / "policies").iterdir()) == ["defaults.yaml", "limits.yml"]
    assert (out / "policies" / "defaults.yaml").read_text() == SAMPLE_POLICY
    text = (out / "kustomization.yaml").read_text()
    assert text.splitlines()[0] == render_deploy.MARKER
    assert yaml.safe_load(text) == {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "namespace": "podgate",
        "configMapGenerator": [
            {
                "name": "podgate-policies",
                "files": ["policies/defaults.yaml", "policies/limits.yml"],
                "options": {"disableNameSuffixHash": True},
            }
        ],
        "secretGenerator": [
            {
                "name": "podgate-tls",
                "type": "kubernetes.io/tls",
                "files": ["tls.crt", "tls.key", "ca.crt"],
                "options": {"disableNameSuffixHash": True},
            }
        ],
    }


def test_another_service_and_namespace_go_into_the_component(policies: Path, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    write_server_cert(new_ca(), certs, dns_names=["gate.platform.svc"])
    out = tmp_path / "generated"

    rendered = render_deploy.render(certs, policies, out, service="gate", namespace="platform", now=NOW)

    assert rendered.server_name == "gate.platform.svc"
    component = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert component["namespace"] == "platform"
    assert component["patches"] == [
        {
            "target": {"kind": "Service", "name": "podgate"},
            "patch": "- op: replace\n  path: /metadata/name\n  value: gate\n",
        }
    ]


@pytest.mark.parametrize(
    ("service", "namespace", "message"),
    [
        ("Gate", "platform", "--service: must be a DNS label (lower-case letters, digits, '-') (got 'Gate')"),
        ("gate", "a.b", "--namespace: must be a DNS label (lower-case letters, digits, '-') (got 'a.b')"),
    ],
    ids=["service-upper-case", "namespace-dotted"],
)
def test_refuses_names_kubernetes_would(
    certs: Path, policies: Path, tmp_path: Path, service: str, namespace: str, message: str
) -> None:
    with pytest.raises(PodgateError) as caught:
        render_deploy.render(certs, policies, tmp_path / "out", service=service, namespace=namespace, now=NOW)
    assert str(caught.value) == message


def test_rerendering_replaces_the_whole_directory(certs: Path, policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "generated"
    render(certs, policies, out)
    (policies / "limits.yml").unlink()
    (out / "stray.txt").write_text("left by hand")

    rendered = render(certs, policies, out)

    assert rendered.policies == ("defaults.yaml",)
    assert sorted(p.name for p in (out / "policies").iterdir()) == ["defaults.yaml"]
    assert not (out / "stray.txt").exists()
    # Neither the staging directory nor the previous copy is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs", "generated", "policies"]


def test_refuses_to_replace_a_directory_it_did_not_write(certs: Path, policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")

    with pytest.raises(PodgateError) as caught:
        render(certs, policies, out)

    assert str(caught.value) == f"refusing to replace {out}: it was not written by podgate render-deploy"
    assert (out / "kustomization.yaml").read_text() == "resources: [deployment.yaml]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs", "deploy", "policies"]


def test_an_empty_directory_may_be_replaced(certs: Path, policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    render(certs, policies, out)
    assert (out / "kustomization.yaml").is_file()


def test_extra_ca_joins_the_bundle_and_may_have_signed_the_server(policies: Path, tmp_path: Path) -> None:
    # Mid-rotation: certs/ has the new CA, while the server certificate still comes from the previous one.
    previous, new = new_ca("previous CA"), new_ca("new CA")
    certs = tmp_path / "certs"
    write_server_cert(previous, certs)
    (certs / "ca.pem").write_bytes(new.pem)
    (tmp_path / "previous.pem").write_bytes(previous.pem)
    out = tmp_path / "generated"

    rendered = render(certs, policies, out, extra_cas=[tmp_path / "previous.pem"])

    assert rendered.ca_certificates == 2
    assert (out / "ca.crt").read_bytes() == new.pem + previous.pem


def test_warns_about_a_certificate_near_expiry(policies: Path, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    write_server_cert(new_ca(), certs, not_after=NOW + datetime.timedelta(days=10))

    rendered = render(certs, policies, tmp_path / "generated")

    assert rendered.warnings == ("the server certificate expires on 2030-06-11: rotate it (make certs)",)


def test_refuses_an_empty_policy_directory_or_file(certs: Path, tmp_path: Path) -> None:
    # The server would not start on them (or would turn enforcement off with --allow-empty).
    empty = tmp_path / "policies"
    empty.mkdir()
    with pytest.raises(PolicyError) as caught:
        render(certs, empty, tmp_path / "generated")
    assert str(caught.value) == (
        f"{empty}: no policy files (*.yaml, *.yml): with no policies podgate enforces nothing"
    )
    (empty / "resources.yaml").write_text("# emptied by mistake\n")
    with pytest.raises(PolicyError) as caught:
        render(certs, empty, tmp_path / "generated")
    assert str(caught.value) == (
        f"{empty}/resources.yaml:1: holds no policy document: delete the file to remove its policies"
    )
    assert not (tmp_path / "generated").exists()


def test_policies_too_big_for_client_side_apply_warn_and_too_big_for_a_configmap_fail(
    certs: Path, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    padding = render_deploy.LAST_APPLIED_LIMIT - len(SAMPLE_POLICY)
    (policies / "big.yaml").write_bytes(SAMPLE_POLICY.encode() + b"#" * padding)
    rendered = render(certs, policies, tmp_path / "generated")
    assert rendered.warnings == (
        f"policies total {render_deploy.LAST_APPLIED_LIMIT} bytes: client-side `kubectl apply` will fail "
        "on the last-applied annotation; apply with --server-side",
    )

    huge = SAMPLE_POLICY.replace("name: sample", "name: huge").encode()
    (policies / "huge.yaml").write_bytes(huge + b"#" * (render_deploy.CONFIGMAP_LIMIT - len(huge)))
    with pytest.raises(
        PodgateError, match=r"^policies total 1310720 bytes; a ConfigMap holds at most 1048576$"
    ):
        render(certs, policies, tmp_path / "generated")


def _other_key(certs: Path) -> None:
    write_server_cert(new_ca(), certs, key=ec.generate_private_key(ec.SECP256R1()))


def _other_ca(certs: Path) -> None:
    write_server_cert(new_ca("issuer"), certs)
    (certs / "ca.pem").write_bytes(new_ca("unrelated CA").pem)


CANNOT = f"server.pem cannot serve {SERVER_NAME}:"
BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda certs: certs.mkdir(), "ca.pem: No such file or directory (run `make certs` first)"),
    "key-mismatch": (_other_key, "server-key.pem does not belong to server.pem"),
    "foreign-issuer": (
        _other_ca,
        f"{CANNOT} issued by CN=issuer, not by CN=unrelated CA",
    ),
    "no-san": (
        lambda certs: write_server_cert(new_ca(), certs, dns_names=("podgate.default.svc", "localhost")),
        f"{CANNOT} SANs do not cover podgate.podgate.svc (SANs: podgate.default.svc, localhost)",
    ),
    "not-a-ca": (
        lambda certs: write_server_cert(new_ca("leaf posing as CA", is_ca=False), certs),
        f"{CANNOT} CN=leaf posing as CA is not a CA certificate",
    ),
    "client-only": (
        lambda certs: write_server_cert(new_ca(), certs, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)),
        f"{CANNOT} not usable as a TLS server certificate (no 'server auth' extended key usage)",
    ),
    "expired": (
        lambda certs: write_server_cert(new_ca(), certs, not_after=NOW - datetime.timedelta(hours=1)),
        f"{CANNOT} the certificate expired on 2030-06-01 11:00:00Z",
    ),
    "not-yet-valid": (
        lambda certs: write_server_cert(new_ca(), certs, not_before=NOW + datetime.timedelta(hours=1)),
        f"{CANNOT} the certificate is not valid before 2030-06-01 13:00:00Z",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_refuses_certificates_the_api_server_would_reject(case: str, policies: Path, tmp_path: Path) -> None:
    breaks, message = BROKEN[case]
    certs = tmp_path / "certs"
    breaks(certs)
    out = tmp_path / "generated"

    with pytest.raises(PkiError) as caught:
        render(certs, policies, out)

    assert str(caught.value).endswith(message)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs", "policies"]


def test_refuses_policy_files_that_cannot_be_configmap_keys(certs: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "team a.yaml").write_text(SAMPLE_POLICY)
    with pytest.raises(PodgateError) as caught:
        render(certs, policies, tmp_path / "generated")
    assert str(caught.value) == (
        f"{policies}: file names must be ConfigMap keys (letters, digits, '-', '_', '.'): team a.yaml"
    )


def test_refuses_policies_that_do_not_load(certs: Path, policies: Path, tmp_path: Path) -> None:
    (policies / "broken.yaml").write_text(SAMPLE_POLICY.replace("name: team-label", "nam: team-label"))
    (policies / "limits.yml").write_text(SAMPLE_POLICY)
    with pytest.raises(PolicyError) as caught:
        render(certs, policies, tmp_path / "generated")
    assert [(Path(i.file).name, i.line, i.path) for i in caught.value.issues] == [
        ("broken.yaml", 7, "spec.rules[0]"),
        ("broken.yaml", 7, "spec.rules[0].nam"),
        ("limits.yml", 1, "metadata.name"),
    ]
    assert not (tmp_path / "generated").exists()


def test_command_lists_every_policy_problem(
    certs_valid_today: Path, policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "limits.yml").write_text(SAMPLE_POLICY)
    argv = ["render-deploy", "--certs-dir", str(certs_valid_today), "--policies", str(policies)]

    assert main([*argv, "--out", str(tmp_path / "generated")]) == 1

    assert capsys.readouterr().err == (
        f"podgate render-deploy: {policies / 'limits.yml'}:1: metadata.name: duplicate name 'sample' "
        f"(first at {policies / 'defaults.yaml'}:1)\n"
    )


def test_refuses_a_missing_policy_directory(certs: Path, tmp_path: Path) -> None:
    with pytest.raises(PodgateError, match="nowhere: not a directory of policy files"):
        render(certs, tmp_path / "nowhere", tmp_path / "generated")


def test_command_prints_a_summary(
    certs_valid_today: Path, policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated"
    argv = [
        "render-deploy",
        "--certs-dir",
        str(certs_valid_today),
        "--policies",
        str(policies),
        "--out",
        str(out),
    ]

    assert main(argv) == 0

    captured = capsys.readouterr()
    assert captured.out.startswith(
        f"{out}: Service podgate.podgate.svc, 2 policy file(s), caBundle of 1 CA certificate(s), "
        "server certificate"
    )
    assert captured.err == ""


def test_command_reports_errors_on_stderr(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["render-deploy", "--certs-dir", str(tmp_path / "none"), "--policies", str(policies)]
    argv += ["--out", str(tmp_path / "generated")]

    assert main(argv) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"podgate render-deploy: {tmp_path / 'none' / 'ca.pem'}: No such file or directory "
        "(run `make certs` first)\n"
    )


def test_namespace_and_service_flags_choose_the_name_checked(
    certs_valid_today: Path, policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["render-deploy", "--certs-dir", str(certs_valid_today), "--policies", str(policies)]
    argv += ["--out", str(tmp_path / "generated"), "--service", "gate", "--namespace", "elsewhere"]

    assert main(argv) == 1

    assert capsys.readouterr().err == (
        "podgate render-deploy: server.pem cannot serve gate.elsewhere.svc: "
        "SANs do not cover gate.elsewhere.svc (SANs: podgate.podgate.svc)\n"
    )
