"""deploy/: the rendered manifests are valid Kubernetes objects and keep the cluster safe from podgate."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy_support import (
    SERVER_NAME,
    by_kind,
    kustomize,
    new_ca,
    policy_dir,
    rendered_copy,
    write_server_cert,
)
from webhook.cli import render_deploy

FIRST_SUPPORTED_MINOR = 30
LATEST_MINOR = int(kubernetes_validate.latest_version().split(".")[1])
VERSIONS = [f"1.{minor}" for minor in range(FIRST_SUPPORTED_MINOR, LATEST_MINOR + 1)]

EXEMPT_NAMESPACES = {"kube-system", "kube-node-lease", "kube-public", "podgate"}
# rbac.yaml and rbac-audit.yaml (docs/cluster.md): cluster-scoped, so without a namespace.
RBAC_OBJECTS = {
    ("ClusterRole", "podgate-cluster-facts", None),
    ("ClusterRoleBinding", "podgate-cluster-facts", None),
    ("ClusterRole", "podgate-audit", None),
}
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_CONTROLLERS = {
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}
# What the control plane needs to make progress or recover: a webhook on these can wedge a cluster.
NEVER_GATED = {
    ("coordination.k8s.io", "leases"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("", "nodes"),
    ("", "namespaces"),
    ("", "endpoints"),
    ("discovery.k8s.io", "endpointslices"),
    ("", "serviceaccounts"),
    ("", "secrets"),
    ("", "configmaps"),
    ("admissionregistration.k8s.io", "*"),
}


@dataclass(frozen=True)
class Rendered:
    objects: list[dict[str, Any]]
    deploy: Path
    certs: Path
    policies: Path

    def get(self, kind: str) -> dict[str, Any]:
        return by_kind(self.objects, kind)

    def webhooks(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for webhook in self.get(kind)["webhooks"]:
                yield kind, webhook


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    work = tmp_path_factory.mktemp("deploy")
    certs = work / "certs"
    write_server_cert(new_ca(), certs)
    policies = policy_dir(work / "policies")
    deploy = rendered_copy(work, certs, policies)
    return Rendered(kustomize(deploy), deploy, certs, policies)


def pod_spec(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.get("Deployment")["spec"]["template"]["spec"]
    return spec


def test_renders_every_object_podgate_needs(rendered: Rendered) -> None:
    found = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in rendered.objects}
    assert found == {
        ("Namespace", "podgate", None),
        ("ServiceAccount", "podgate", "podgate"),
        ("ResourceQuota", "podgate-critical-pods", "podgate"),
        ("ConfigMap", "podgate-policies", "podgate"),
        ("Secret", "podgate-tls", "podgate"),
        ("Service", "podgate", "podgate"),
        ("Deployment", "podgate", "podgate"),
        ("PodDisruptionBudget", "podgate", "podgate"),
        ("MutatingWebhookConfiguration", "podgate", None),
        ("ValidatingWebhookConfiguration", "podgate", None),
        *RBAC_OBJECTS,
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(rendered: Rendered, version: str) -> None:
    problems = []
    for obj in rendered.objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert problems == []


def test_every_webhook_is_safe_to_call_and_fast_to_give_up(rendered: Rendered) -> None:
    for _, webhook in rendered.webhooks():
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["sideEffects"] == "None"
        assert 1 <= webhook["timeoutSeconds"] <= 5
        assert webhook["matchPolicy"] == "Equivalent"


def test_every_webhook_calls_the_podgate_service_with_the_ca_that_signed_it(rendered: Rendered) -> None:
    ca_bundle = base64.b64encode((rendered.certs / "ca.pem").read_bytes()).decode()
    service = rendered.get("Service")
    paths = {}
    for kind, webhook in rendered.webhooks():
        config = webhook["clientConfig"]
        assert "url" not in config
        # kustomize wraps long base64 lines; the API server's decoder skips the newlines.
        assert "".join(config["caBundle"].split()) == ca_bundle
        assert config["service"]["name"] == service["metadata"]["name"]
        assert config["service"]["namespace"] == service["metadata"]["namespace"]
        assert config["service"]["port"] == 443
        assert f"{config['service']['name']}.{config['service']['namespace']}.svc" == SERVER_NAME
        paths[kind] = config["service"]["path"]
    assert paths == {"MutatingWebhookConfiguration": "/mutate", "ValidatingWebhookConfiguration": "/validate"}


def test_every_webhook_skips_system_namespaces_its_own_and_opted_out_ones(rendered: Rendered) -> None:
    for _, webhook in rendered.webhooks():
        expressions = webhook["namespaceSelector"]["matchExpressions"]
        assert webhook["namespaceSelector"].keys() == {"matchExpressions"}
        assert len(expressions) == 2
        by_name, opt_out = expressions
        assert by_name["key"] == "kubernetes.io/metadata.name"
        assert by_name["operator"] == "NotIn"
        assert set(by_name["values"]) == EXEMPT_NAMESPACES
        assert opt_out == {"key": "podgate.io/ignore", "operator": "NotIn", "values": ["true"]}
    namespace = rendered.get("Namespace")
    assert namespace["metadata"]["name"] in EXEMPT_NAMESPACES
    assert rendered.get("Deployment")["metadata"]["namespace"] in EXEMPT_NAMESPACES
    assert namespace["metadata"]["labels"]["podgate.io/ignore"] == "true"


def rule_targets(webhook: dict[str, Any]) -> set[tuple[str, str, str]]:
    targets = set()
    for rule in webhook["rules"]:
        assert rule["apiVersions"] == ["v1"]
        assert rule["scope"] == "Namespaced"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for operation in rule["operations"]:
                    targets.add((group, resource, operation))
    return targets


def test_the_mutating_webhook_defaults_pods_at_creation_and_fails_open(rendered: Rendered) -> None:
    (webhook,) = rendered.get("MutatingWebhookConfiguration")["webhooks"]
    assert rule_targets(webhook) == {("", "pods", "CREATE")}
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["reinvocationPolicy"] == "IfNeeded"


def test_the_validating_webhook_checks_pods_and_controllers_and_fails_closed(rendered: Rendered) -> None:
    (webhook,) = rendered.get("ValidatingWebhookConfiguration")["webhooks"]
    expected = {(group, resource) for group, resource in POD_CONTROLLERS} | {("", "pods")}
    assert rule_targets(webhook) == {(g, r, op) for g, r in expected for op in ("CREATE", "UPDATE")}
    assert webhook["failurePolicy"] == "Fail"
    conditions = {c["name"]: c["expression"] for c in webhook["matchConditions"]}
    # Objects being deleted only shed finalizers: refusing that would strand them in Terminating.
    assert conditions.pop("not-being-deleted") == "!has(object.metadata.deletionTimestamp)"
    # An UPDATE reaches podgate only when it changes the pod spec or template (tests/e2e/test_outage.py
    # shows it in a real cluster); a CREATE always does, so each condition tests the operation first.
    assert set(conditions) == {"pod-spec-changed", "pod-template-changed", "cronjob-template-changed"}
    assert all(e.startswith("request.operation != 'UPDATE' || ") for e in conditions.values())


def test_no_webhook_matches_what_the_control_plane_needs(rendered: Rendered) -> None:
    for _, webhook in rendered.webhooks():
        for group, resource, _ in rule_targets(webhook):
            assert "*" not in group and "*" not in resource and "/" not in resource
            assert (group, resource) not in NEVER_GATED
            assert (group, "*") not in NEVER_GATED


def test_the_server_runs_two_replicas_on_different_nodes_through_rollouts(rendered: Rendered) -> None:
    deployment = rendered.get("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    per_node = [
        c
        for c in pod_spec(rendered)["topologySpreadConstraints"]
        if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert len(per_node) == 1
    assert per_node[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert per_node[0]["maxSkew"] == 1
    assert per_node[0]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert pod_spec(rendered)["priorityClassName"] == "system-cluster-critical"


def test_the_disruption_budget_lets_drains_proceed_one_replica_at_a_time(rendered: Rendered) -> None:
    budget = rendered.get("PodDisruptionBudget")["spec"]
    labels = rendered.get("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1
    assert rendered.get("Deployment")["spec"]["replicas"] - budget["maxUnavailable"] >= 1
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_the_pod_is_locked_down(rendered: Rendered) -> None:
    spec = pod_spec(rendered)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    account = rendered.get("ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (
        rendered.get("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    )


def test_probes_resources_and_shutdown(rendered: Rendered) -> None:
    spec = pod_spec(rendered)
    (container,) = spec["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == 8443
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        get = container[probe]["httpGet"]
        assert (get["path"], get["scheme"], get["port"]) == (path, "HTTPS", port["name"])
    for bound in ("requests", "limits"):
        assert container["resources"][bound].keys() == {"cpu", "memory"}
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    # preStop, then the server's graceful stop (25 s by default), all before the kubelet's SIGKILL.
    assert spec["terminationGracePeriodSeconds"] >= int(sleep[1]) + 25


def test_the_service_sends_443_to_the_server_port(rendered: Rendered) -> None:
    service = rendered.get("Service")["spec"]
    (container,) = pod_spec(rendered)["containers"]
    (port,) = service["ports"]
    target = {p["name"]: p["containerPort"] for p in container["ports"]}[port["targetPort"]]
    assert (port["port"], target) == (443, 8443)
    assert (
        service["selector"].items()
        <= rendered.get("Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_mounts_match_the_server_flags_and_allow_hot_reload(rendered: Rendered) -> None:
    spec = pod_spec(rendered)
    (container,) = spec["containers"]
    args = container["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "serve"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    # The kubelet can update a ConfigMap or Secret only in a whole-directory mount.
    assert all("subPath" not in m and "subPathExpr" not in m for m in mounts.values())
    assert mounts["policies"]["mountPath"] == flags["--policies"]
    assert volumes["policies"]["configMap"]["name"] == rendered.get("ConfigMap")["metadata"]["name"]
    assert flags["--cert"] == mounts["tls"]["mountPath"] + "/tls.crt"
    assert flags["--key"] == mounts["tls"]["mountPath"] + "/tls.key"
    assert volumes["tls"]["secret"]["secretName"] == rendered.get("Secret")["metadata"]["name"]
    assert flags["--bind"] == "0.0.0.0:8443"
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"
    assert mounts["tmp"]["mountPath"] == "/tmp"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_the_configmap_and_secret_carry_the_rendered_inputs(rendered: Rendered) -> None:
    policies = rendered.get("ConfigMap")
    shipped = render_deploy.policy_files(rendered.policies)
    assert shipped
    assert policies["data"] == {p.name: p.read_text() for p in shipped}
    secret = rendered.get("Secret")
    assert secret["type"] == "kubernetes.io/tls"
    files = {"tls.crt": "server.pem", "tls.key": "server-key.pem", "ca.crt": "ca.pem"}
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        key: (rendered.certs / name).read_bytes() for key, name in files.items()
    }


@pytest.mark.parametrize(
    ("component", "kind", "policy"),
    [
        ("fail-open", "ValidatingWebhookConfiguration", "Ignore"),
        ("fail-closed", "MutatingWebhookConfiguration", "Fail"),
    ],
)
def test_failure_policy_components_change_one_field(
    rendered: Rendered, component: str, kind: str, policy: str
) -> None:
    # An overlay as docs/operations.md shows it; kustomize wants relative paths.
    overlay = rendered.deploy.parent / f"overlay-{component}"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [../deploy]\ncomponents: [../deploy/components/{component}]\n"
    )
    switched = kustomize(overlay)

    changed = by_kind(switched, kind)
    assert [w["failurePolicy"] for w in changed["webhooks"]] == [policy]
    for webhook in changed["webhooks"]:
        webhook["failurePolicy"] = next(w for k, w in rendered.webhooks() if k == kind)["failurePolicy"]
    assert switched == rendered.objects


def test_another_service_and_namespace_reach_every_object_and_webhook(tmp_path: Path) -> None:
    # `make certs SERVICE=gate NAMESPACE=platform` issues gate.platform.svc; the rest must follow it.
    certs = tmp_path / "certs"
    write_server_cert(new_ca(), certs, dns_names=["gate.platform.svc"])
    deploy = rendered_copy(
        tmp_path, certs, policy_dir(tmp_path / "policies"), service="gate", namespace="platform"
    )
    objects = kustomize(deploy)

    found = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}
    assert found == {
        ("Namespace", "platform", None),
        ("ServiceAccount", "podgate", "platform"),
        ("ResourceQuota", "podgate-critical-pods", "platform"),
        ("ConfigMap", "podgate-policies", "platform"),
        ("Secret", "podgate-tls", "platform"),
        ("Service", "gate", "platform"),
        ("Deployment", "podgate", "platform"),
        ("PodDisruptionBudget", "podgate", "platform"),
        ("MutatingWebhookConfiguration", "podgate", None),
        ("ValidatingWebhookConfiguration", "podgate", None),
        *RBAC_OBJECTS,
    }
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for webhook in by_kind(objects, kind)["webhooks"]:
            service = webhook["clientConfig"]["service"]
            assert (service["name"], service["namespace"], service["port"]) == ("gate", "platform", 443)
            by_name = webhook["namespaceSelector"]["matchExpressions"][0]
            assert by_name["key"] == "kubernetes.io/metadata.name"
            assert set(by_name["values"]) == EXEMPT_NAMESPACES - {"podgate"} | {"platform"}
    for obj in objects:
        kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)


def test_deploy_renders_nothing_without_generated_inputs(tmp_path: Path) -> None:
    # The real deploy/ before `make deploy-inputs`: kustomize must fail rather than render a partial install.
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "deploy",
        tmp_path / "deploy",
        ignore=shutil.ignore_patterns("generated"),
    )
    with pytest.raises(AssertionError, match="generated"):
        kustomize(tmp_path / "deploy")


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_server_may_only_read_namespaces_and_limitranges(rendered: Rendered) -> None:
    roles = {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == "ClusterRole"}
    bindings = [o for o in rendered.objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    account = rendered.get("ServiceAccount")["metadata"]
    (binding,) = bindings
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    role = roles[binding["roleRef"]["name"]]
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert rules_of(role) == {
        ("", r, v) for r in ("namespaces", "limitranges") for v in ("get", "list", "watch")
    }


def test_the_audit_role_only_reads_and_is_bound_to_nobody(rendered: Rendered) -> None:
    roles = {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == "ClusterRole"}
    bound = {o["roleRef"]["name"] for o in rendered.objects if o["kind"].endswith("RoleBinding")}
    assert "podgate-audit" not in bound
    granted = rules_of(roles["podgate-audit"])
    assert {verb for _, _, verb in granted} == {"get", "list"}
    expected = POD_CONTROLLERS | {("", "pods"), ("", "namespaces"), ("", "limitranges")}
    assert {(group, resource) for group, resource, _ in granted} == expected


def test_the_api_token_reaches_the_server_container_only(rendered: Rendered) -> None:
    spec = pod_spec(rendered)
    assert spec["automountServiceAccountToken"] is False
    assert rendered.get("ServiceAccount")["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    mounted = {m["mountPath"]: m for m in container["volumeMounts"]}
    token = mounted[SERVICE_ACCOUNT_DIR]
    assert token["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == token["name"]]
    sources = volume["projected"]["sources"]
    assert {"path": "token", "expirationSeconds": 3607} in [s.get("serviceAccountToken") for s in sources]
    assert all(c.get("volumeMounts", []) == [] for c in spec.get("initContainers", []))


def test_the_binding_follows_podgate_into_another_namespace(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    write_server_cert(new_ca(), certs, dns_names=["podgate.platform.svc"])
    deploy = rendered_copy(tmp_path, certs, policy_dir(tmp_path / "policies"), namespace="platform")
    binding = by_kind(kustomize(deploy), "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "podgate", "namespace": "platform"}]
