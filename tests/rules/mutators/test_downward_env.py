import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import FIXTURE_FILES, evaluate_twice, fixture_request, pod_with, policy_text
from webhook import PolicySet, evaluate
from webhook.errors import PolicyError

POD_CREATES = [f.name[:4] for f in FIXTURE_FILES if "_mutate_CREATE_Pod_" in f.name]
PROTECTED = {"0037"}  # kube-system: no default policy reaches it
SEED_VARIABLES = {
    "MY_NODE_NAME": "spec.nodeName",
    "MY_POD_NAME": "metadata.name",
    "MY_POD_NAMESPACE": "metadata.namespace",
    "MY_POD_IP": "status.podIP",
    "MY_POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
}

POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: identity}
spec:
  rules:
    - name: env
      downwardEnv:
        env:
          - {name: MY_POD_NAME, fieldPath: metadata.name}
          - {name: MY_NODE_NAME, fieldPath: spec.nodeName}
        EXTRA
"""


def _run(containers: list[dict[str, Any]], extra: str = "", init: list[dict[str, Any]] | None = None) -> Any:
    return evaluate_twice(policy_text(POLICY.replace("EXTRA", extra)), pod_with(containers, init))


def _env(decision: Any, index: int = 0, list_name: str = "containers") -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = decision.object["spec"][list_name][index].get("env", [])
    return env


def _names(env: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in env]


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


@pytest.mark.parametrize("prefix", [p for p in POD_CREATES if p not in PROTECTED])
def test_every_captured_container_sees_its_pod_before_its_own_env(
    default_policies: PolicySet, prefix: str
) -> None:
    request = fixture_request(prefix)
    decision = evaluate_twice(default_policies, request)
    kubernetes_validate.validate(decision.object, "1.36.0", strict=True)
    original = request["object"]["spec"]["containers"]
    for index, before in enumerate(original):
        env = _env(decision, index)
        names = _names(env)
        for name, path in SEED_VARIABLES.items():
            assert names.count(name) == 1
            assert _field(name, path) in env
        own = before.get("env", [])
        if own:
            first_own = env.index(own[0])
            assert all(names.index(name) < first_own for name in SEED_VARIABLES)
            assert env[first_own : first_own + len(own)] == own


def test_kube_system_pods_get_no_env(default_policies: PolicySet) -> None:
    decision = evaluate(default_policies, fixture_request("0037"))
    assert not [c for c in decision.changes if c.policy == "downward-env"]


def test_the_default_policy_exposes_the_containers_limits_for_a_jvm(default_policies: PolicySet) -> None:
    decision = evaluate_twice(default_policies, fixture_request("0043"))
    env = {e["name"]: e["valueFrom"] for e in _env(decision)}
    assert env["MY_MEMORY_LIMIT_MIB"] == {
        "resourceFieldRef": {"containerName": "web", "resource": "limits.memory", "divisor": "1Mi"}
    }
    assert env["MY_CPU_LIMIT"] == {
        "resourceFieldRef": {"containerName": "web", "resource": "limits.cpu", "divisor": "1"}
    }


def test_variables_go_first_in_policy_order_and_are_explained() -> None:
    own = [{"name": "LOG_FILE", "value": "/var/log/$(MY_POD_NAME).log"}]
    decision = _run([{"name": "app", "env": copy.deepcopy(own)}])
    assert _env(decision) == [
        _field("MY_POD_NAME", "metadata.name"),
        _field("MY_NODE_NAME", "spec.nodeName"),
        *own,
    ]
    assert [(c.path, c.message) for c in decision.changes] == [
        ("/spec/containers/0/env/0", 'container "app": env MY_POD_NAME set from metadata.name'),
        ("/spec/containers/0/env/1", 'container "app": env MY_NODE_NAME set from spec.nodeName'),
    ]


def test_a_variable_the_user_defines_is_never_overridden() -> None:
    own = [{"name": "A", "value": "1"}, {"name": "MY_POD_NAME", "value": "mine"}]
    decision = _run([{"name": "app", "env": copy.deepcopy(own)}])
    assert _env(decision) == [_field("MY_NODE_NAME", "spec.nodeName"), *own]


def test_an_envfrom_prefix_that_may_define_a_variable_skips_it() -> None:
    env_from = [{"prefix": "MY_POD_", "configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}}]
    decision = _run([{"name": "app", "envFrom": env_from}])
    # MY_POD_NAME could come from the ConfigMap; the unprefixed Secret could define anything, which
    # podgate cannot know, so MY_NODE_NAME is injected (env wins over envFrom in Kubernetes).
    assert _names(_env(decision)) == ["MY_NODE_NAME"]


def test_an_empty_envfrom_prefix_counts_as_no_prefix() -> None:
    decision = _run([{"name": "app", "envFrom": [{"prefix": "", "configMapRef": {"name": "settings"}}]}])
    assert _names(_env(decision)) == ["MY_POD_NAME", "MY_NODE_NAME"]


def test_limits_are_exposed_with_their_divisor_and_the_containers_name() -> None:
    extra = (
        "- {name: HEAP_MIB, resource: limits.memory, divisor: 1Mi}\n"
        "          - {name: CORES, resource: limits.cpu}\n"
        "          - {name: MILLICORES, resource: requests.cpu, divisor: 1m}"
    )
    text = POLICY.replace("        EXTRA", "          " + extra)
    request = fixture_request("0001")
    request["object"]["spec"]["containers"] = [{"name": "jvm", "resources": {"limits": {"memory": "1Gi"}}}]
    env = {e["name"]: e["valueFrom"] for e in _env(evaluate_twice(policy_text(text), request))}
    assert env["HEAP_MIB"] == {
        "resourceFieldRef": {"containerName": "jvm", "resource": "limits.memory", "divisor": "1Mi"}
    }
    # Without a divisor the apiserver would store "0": it is written out as the default, 1.
    assert env["CORES"]["resourceFieldRef"]["divisor"] == "1"
    assert env["MILLICORES"]["resourceFieldRef"]["divisor"] == "1m"


def test_init_containers_only_when_asked() -> None:
    init = [{"name": "setup"}]
    off = _run([{"name": "app"}], init=copy.deepcopy(init))
    assert off.object["spec"]["initContainers"] == init
    on = _run([{"name": "app"}], extra="initContainers: true", init=copy.deepcopy(init))
    assert _names(_env(on, 0, "initContainers")) == ["MY_POD_NAME", "MY_NODE_NAME"]


def test_label_and_annotation_fields_are_accepted() -> None:
    extra = (
        "- {name: APP, fieldPath: \"metadata.labels['app.kubernetes.io/name']\"}\n"
        "          - {name: OWNER, fieldPath: \"metadata.annotations['example.com/owner']\"}"
    )
    decision = evaluate_twice(
        policy_text(POLICY.replace("        EXTRA", "          " + extra)), fixture_request("0001")
    )
    assert _env(decision)[2] == _field("APP", "metadata.labels['app.kubernetes.io/name']")


def _load_error(variable: str) -> str:
    text = (
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
        "    - name: r\n      downwardEnv:\n        env:\n"
        "          - {name: OK, fieldPath: metadata.uid}\n"
        f"          - {variable}\n"
    )
    with pytest.raises(PolicyError) as caught:
        policy_text(text, "env.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("variable", "error"),
    [
        (
            "{name: X, fieldPath: spec.containers}",
            "env[1].fieldPath: must be one of metadata.name, metadata.namespace, metadata.uid, "
            "spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, "
            "status.podIPs, metadata.labels['<key>'], metadata.annotations['<key>'] (got 'spec.containers')",
        ),
        (
            "{name: X, fieldPath: \"metadata.labels['bad key']\"}",
            "env[1].fieldPath: labels key name 'bad key' must be 1-63 characters of A-Z, a-z, 0-9, "
            "'-', '_' or '.', starting and ending with a letter or digit",
        ),
        (
            "{name: 1X, fieldPath: metadata.name}",
            "env[1].name: must be a valid environment variable name: letters, digits, '_', '-' and '.', "
            "not starting with a digit (got '1X')",
        ),
        ("{name: X}", "env[1]: must have exactly one of fieldPath and resource"),
        (
            "{name: X, fieldPath: metadata.name, resource: limits.cpu}",
            "env[1]: must have exactly one of fieldPath and resource",
        ),
        (
            "{name: X, fieldPath: metadata.name, divisor: 1}",
            "env[1].divisor: only a resource takes a divisor",
        ),
        (
            "{name: X, resource: limits.cpu, divisor: 1Mi}",
            "env[1].divisor: must be one of 1m, 1 for limits.cpu (got '1Mi')",
        ),
        (
            "{name: X, resource: limits.memory, divisor: 1024Ki}",
            "env[1].divisor: must be one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei for "
            "limits.memory (got '1024Ki')",
        ),
        ("{name: OK, fieldPath: metadata.name}", "env[1].name: duplicate variable 'OK'"),
    ],
    ids=[
        "field",
        "label-key",
        "name",
        "neither",
        "both",
        "divisor-on-field",
        "cpu-divisor",
        "memory-divisor",
        "dup",
    ],
)
def test_invalid_variables_are_rejected_at_load_with_file_and_line(variable: str, error: str) -> None:
    assert _load_error(variable) == f"env.yaml:10: spec.rules[0].downwardEnv.{error}"


def test_an_unknown_resource_is_rejected_by_the_schema() -> None:
    assert _load_error("{name: X, resource: limits.gpu}").startswith(
        "env.yaml:10: spec.rules[0].downwardEnv.env[1].resource: must be one of 'limits.cpu', 'limits.memory'"
    )
