import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import FIXTURE_FILES, evaluate_twice, fixture_request, pod_with, policy_text
from webhook import PolicySet, evaluate
from webhook.errors import PolicyError

POD_CREATES = [f.name[:4] for f in FIXTURE_FILES if "_mutate_CREATE_Pod_" in f.name]
PROTECTED = {"0037"}  # kube-system: no default policy reaches it
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")

POLICY = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata: {name: health}
spec:
  rules:
    - name: probes
      probes:
        readiness: {periodSeconds: 10, timeoutSeconds: 3}
        liveness: {periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6, initialDelaySeconds: 15}
        EXTRA
"""


def _run(containers: list[dict[str, Any]], extra: str = "", init: list[dict[str, Any]] | None = None) -> Any:
    return evaluate_twice(policy_text(POLICY.replace("EXTRA", extra)), pod_with(containers, init))


def _container(decision: Any, index: int = 0, list_name: str = "containers") -> Any:
    return decision.object["spec"][list_name][index]


def _tcp_port(port: int, name: str = "", protocol: str = "TCP") -> dict[str, Any]:
    return {"containerPort": port, "protocol": protocol, **({"name": name} if name else {})}


def _assert_valid_probes(container: dict[str, Any]) -> None:
    """What the apiserver checks beyond the OpenAPI schema: the port is real, the thresholds are legal."""
    names = {p.get("name") for p in container.get("ports", []) if p.get("protocol") == "TCP"}
    numbers = {p["containerPort"] for p in container.get("ports", []) if p.get("protocol") == "TCP"}
    for field in PROBES:
        probe = container.get(field)
        if probe is None:
            continue
        handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in probe]
        assert len(handlers) == 1
        port = probe[handlers[0]].get("port")
        if handlers[0] == "httpGet":
            assert probe["httpGet"]["scheme"] == "HTTP" and probe["httpGet"]["path"].startswith("/")
            assert port in names and len(port) <= 15
        elif handlers[0] == "tcpSocket":
            assert port in numbers and 1 <= port <= 65535
        for timing in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
            assert probe[timing] >= 1  # present, so the apiserver's defaulting changes nothing
        if field != "readinessProbe":
            assert probe["successThreshold"] == 1


@pytest.mark.parametrize("prefix", [p for p in POD_CREATES if p not in PROTECTED])
def test_every_captured_pod_gets_probes_its_ports_support(default_policies: PolicySet, prefix: str) -> None:
    request = fixture_request(prefix)
    decision = evaluate_twice(default_policies, request)
    kubernetes_validate.validate(decision.object, "1.36.0", strict=True)
    original = request["object"]["spec"]
    for before, after in zip(original["containers"], decision.object["spec"]["containers"], strict=True):
        _assert_valid_probes(after)
        for field in PROBES:
            if field in before:
                assert after[field] == before[field]  # never touched
        ports = [p for p in before.get("ports", []) if p["protocol"] == "TCP"]
        if any(p.get("name") == "http" for p in ports):
            assert after["livenessProbe"]["httpGet"]["port"] == "http"
            assert after["readinessProbe"]["httpGet"]["port"] == "http"
        elif ports:
            assert after["livenessProbe"]["tcpSocket"]["port"] == ports[0]["containerPort"]
        else:
            assert not any(field in after for field in PROBES)
            warning = f'probes.infer-from-ports: container "{before["name"]}": no'
            is_job_pod = "batch.kubernetes.io/job-name" in request["object"]["metadata"].get("labels", {})
            # The shipped policy leaves Job pods alone (they run to completion): no probe, no warning.
            assert any(w.startswith(warning) for w in decision.warnings) is not is_job_pod
    for before, after in zip(
        original.get("initContainers", []), decision.object["spec"].get("initContainers", []), strict=True
    ):
        assert not any(field in after and field not in before for field in PROBES)


def test_the_named_http_port_gets_the_seeds_probes_and_keeps_its_own_readiness(
    default_policies: PolicySet,
) -> None:
    request = fixture_request("0007")
    decision = evaluate_twice(default_policies, request)
    web = _container(decision)
    assert web["readinessProbe"] == request["object"]["spec"]["containers"][0]["readinessProbe"]
    assert web["livenessProbe"] == {
        "httpGet": {"path": "/", "port": "http", "scheme": "HTTP"},
        "timeoutSeconds": 5,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 6,
    }
    assert web["startupProbe"]["httpGet"] == {"path": "/", "port": "http", "scheme": "HTTP"}
    assert [(c.policy, c.rule, c.path, c.message) for c in decision.changes if c.policy == "probes"] == [
        (
            "probes",
            "infer-from-ports",
            "/spec/containers/0/livenessProbe",
            'container "web": livenessProbe set to httpGet HTTP / on port http',
        ),
        (
            "probes",
            "infer-from-ports",
            "/spec/containers/0/startupProbe",
            'container "web": startupProbe set to httpGet HTTP / on port http',
        ),
    ]


def test_kube_system_pods_get_no_probes(default_policies: PolicySet) -> None:
    decision = evaluate(default_policies, fixture_request("0037"))
    assert not [c for c in decision.changes if c.policy == "probes"]


def test_probes_are_written_out_whole_with_the_policy_timings() -> None:
    decision = _run([{"name": "app", "ports": [_tcp_port(8080, "http")]}])
    app = _container(decision)
    assert app["readinessProbe"] == {
        "httpGet": {"path": "/", "port": "http", "scheme": "HTTP"},
        "timeoutSeconds": 3,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert app["livenessProbe"]["initialDelaySeconds"] == 15
    assert "initialDelaySeconds" not in app["readinessProbe"]  # the apiserver drops a 0
    assert "startupProbe" not in app


def test_the_first_tcp_port_gets_tcp_socket_probes() -> None:
    ports = [_tcp_port(53, "dns", "UDP"), _tcp_port(9090, "metrics"), _tcp_port(8080)]
    app = _container(_run([{"name": "app", "ports": ports}]))
    assert app["livenessProbe"]["tcpSocket"] == {"port": 9090}
    assert app["readinessProbe"]["tcpSocket"] == {"port": 9090}


def test_a_port_without_protocol_counts_as_tcp() -> None:
    app = _container(_run([{"name": "app", "ports": [{"containerPort": 7000}]}]))
    assert app["livenessProbe"]["tcpSocket"] == {"port": 7000}


def test_an_http_port_that_is_not_tcp_is_not_probed_over_http() -> None:
    app = _container(_run([{"name": "app", "ports": [_tcp_port(80, "http", "UDP"), _tcp_port(81)]}]))
    assert app["livenessProbe"]["tcpSocket"] == {"port": 81}


def test_udp_only_ports_give_no_probe_and_a_warning() -> None:
    decision = _run([{"name": "dns", "ports": [_tcp_port(53, "dns", "UDP")]}])
    assert not any(field in _container(decision) for field in PROBES)
    assert decision.warnings == (
        'health.probes: container "dns": no readinessProbe, livenessProbe injected: '
        "it declares no TCP port to probe",
    )


def test_an_existing_probe_is_kept_and_only_the_missing_kind_is_added() -> None:
    exec_probe = {"exec": {"command": ["true"]}, "periodSeconds": 30}
    decision = _run(
        [{"name": "app", "ports": [_tcp_port(8080, "http")], "livenessProbe": exec_probe}],
        extra="startup: {failureThreshold: 30}",
    )
    app = _container(decision)
    assert app["livenessProbe"] == exec_probe
    assert app["readinessProbe"]["httpGet"]["port"] == "http"
    # A startup probe would hold back the user's liveness probe with a check it never asked for.
    assert "startupProbe" not in app
    assert [c.message for c in decision.changes] == [
        'container "app": readinessProbe set to httpGet HTTP / on port http'
    ]


def test_a_container_with_every_probe_is_left_alone_without_warning() -> None:
    probe = {"tcpSocket": {"port": 1}, "timeoutSeconds": 1, "periodSeconds": 10}
    decision = _run([{"name": "app", "readinessProbe": probe, "livenessProbe": probe}])
    assert decision.patch == () and decision.warnings == ()


def test_port_name_path_and_scheme_come_from_the_policy() -> None:
    extra = "httpPortName: web\n        httpPath: /healthz\n        httpScheme: HTTPS"
    app = _container(_run([{"name": "app", "ports": [_tcp_port(80, "http"), _tcp_port(8443, "web")]}], extra))
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web", "scheme": "HTTPS"}


def test_port_names_choose_the_port_in_their_order() -> None:
    # The pod: metrics first, web second. Without portNames, the metrics port gets the probes.
    ports = [_tcp_port(9090, "metrics"), _tcp_port(8080, "web")]
    assert _container(_run([{"name": "app", "ports": ports}]))["livenessProbe"]["tcpSocket"] == {"port": 9090}
    decision = _run([{"name": "app", "ports": ports}], "portNames: [http, web]")
    assert _container(decision)["livenessProbe"]["tcpSocket"] == {"port": 8080}
    assert [c.message for c in decision.changes] == [
        'container "app": readinessProbe set to tcpSocket on port 8080',
        'container "app": livenessProbe set to tcpSocket on port 8080',
    ]


def test_the_http_port_follows_the_listed_names_unless_listed_itself() -> None:
    ports = [_tcp_port(9090, "metrics"), _tcp_port(8080, "http"), _tcp_port(8081, "web")]
    listed_first = _container(_run([{"name": "app", "ports": ports}], "portNames: [web]"))
    assert listed_first["livenessProbe"]["tcpSocket"] == {"port": 8081}
    http_first = _container(_run([{"name": "app", "ports": ports}], "portNames: [http, web]"))
    assert http_first["livenessProbe"]["httpGet"]["port"] == "http"
    # Not among the names: the http port still wins over the first TCP port, as without portNames.
    unlisted = _container(_run([{"name": "app", "ports": ports}], "portNames: [grpc]"))
    assert unlisted["livenessProbe"]["httpGet"]["port"] == "http"


def test_a_container_with_none_of_the_names_gets_its_first_tcp_port() -> None:
    ports = [_tcp_port(53, "dns", "UDP"), _tcp_port(9090, "metrics"), _tcp_port(8080)]
    app = _container(_run([{"name": "app", "ports": ports}], "portNames: [web, api]"))
    assert app["livenessProbe"]["tcpSocket"] == {"port": 9090}


def test_a_listed_name_on_a_udp_port_is_passed_over() -> None:
    ports = [_tcp_port(5000, "web", "UDP"), _tcp_port(9090, "metrics")]
    app = _container(_run([{"name": "app", "ports": ports}], "portNames: [web]"))
    assert app["livenessProbe"]["tcpSocket"] == {"port": 9090}


def test_init_containers_never_get_probes_and_native_sidecars_only_when_asked() -> None:
    init = [
        {"name": "setup", "ports": [_tcp_port(8080, "http")]},
        {"name": "proxy", "restartPolicy": "Always", "ports": [_tcp_port(15001)]},
    ]
    app = {"name": "app", "ports": [_tcp_port(8080, "http")]}
    off = _run([app], init=copy.deepcopy(init))
    assert off.object["spec"]["initContainers"] == init
    on = _run([app], extra="nativeSidecars: true", init=copy.deepcopy(init))
    setup, proxy = on.object["spec"]["initContainers"]
    assert setup == init[0]
    assert proxy["livenessProbe"]["tcpSocket"] == {"port": 15001}
    assert proxy["readinessProbe"]["tcpSocket"] == {"port": 15001}


def test_the_captured_native_sidecar_is_not_probed_by_default(default_policies: PolicySet) -> None:
    request = fixture_request("0013")
    decision = evaluate_twice(default_policies, request)
    assert decision.object["spec"]["initContainers"] == request["object"]["spec"]["initContainers"]


def _load_error(rule: str) -> str:
    text = f"apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  rules:\n{rule}"
    with pytest.raises(PolicyError) as caught:
        policy_text(text, "probes.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (
            "    - name: r\n      probes:\n        liveness: {}\n        portNames: [web, Web_2]\n",
            "probes.yaml:9: spec.rules[0].probes.portNames[1]: must be lowercase letters, digits and "
            "single inner hyphens, like a container port name (got 'Web_2')",
        ),
        (
            "    - name: r\n      probes:\n        liveness:\n          successThreshold: 2\n",
            "probes.yaml:9: spec.rules[0].probes.liveness.successThreshold: "
            "must be 1 for liveness probes (Kubernetes rejects others; got 2)",
        ),
        (
            "    - name: r\n      probes:\n        readiness: {}\n        startup: {}\n",
            "probes.yaml:9: spec.rules[0].probes.startup: "
            "a startup probe is only injected with a liveness probe: add liveness",
        ),
        (
            "    - name: r\n      probes:\n        readiness: {}\n        httpPortName: Http_Port\n",
            "probes.yaml:9: spec.rules[0].probes.httpPortName: must be lowercase letters, digits and "
            "single inner hyphens, like a container port name (got 'Http_Port')",
        ),
        (
            "    - name: r\n      probes:\n        liveness: {}\n        httpPortName: '8080'\n",
            "probes.yaml:9: spec.rules[0].probes.httpPortName: "
            "must contain a letter, like a container port name (got '8080')",
        ),
        (
            "    - name: r\n      probes:\n        httpPath: /\n",
            "probes.yaml:7: spec.rules[0].probes: "
            "names no probe to inject: give liveness, readiness or startup",
        ),
        (
            "    - name: r\n      probes:\n        readiness: {timeoutSeconds: 0}\n",
            "probes.yaml:8: spec.rules[0].probes.readiness.timeoutSeconds: 0 is less than the minimum of 1",
        ),
        (
            # Found by tests/test_fuzz_policies.py: it loaded, then every pod met the fail mode (the
            # patch cannot carry an integer past 64 bits; Kubernetes' field is an int32).
            "    - name: r\n      probes:\n        readiness: {periodSeconds: 1180591620717411303424}\n",
            "probes.yaml:8: spec.rules[0].probes.readiness.periodSeconds: "
            "1180591620717411303424 is greater than the maximum of 2147483647",
        ),
    ],
    ids=[
        "port-names",
        "liveness-success",
        "startup-alone",
        "port-name-case",
        "port-name-digits",
        "no-kind",
        "zero",
        "int32",
    ],
)
def test_invalid_policies_are_rejected_at_load_with_file_and_line(rule: str, error: str) -> None:
    assert _load_error(rule) == error
