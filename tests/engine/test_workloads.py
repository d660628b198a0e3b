"""Workloads are judged as the pods their controllers create: the fixture pairs must agree."""

import copy
import json
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.conftest import POLICIES, fixture_request, policy_text
from webhook import Decision, PolicySet, evaluate, load_policies
from webhook.errors import PolicyError
from webhook.kube.pods import TEMPLATE_PATHS
from webhook.policy.loader import parse_sources, read_sources
from webhook.rules.mutators import MUTATORS

RESOURCES_ONLY = POLICIES / "resources.yaml"
# Longest first, so that spec.jobTemplate.spec.template is stripped whole.
TEMPLATES = sorted((p for p in TEMPLATE_PATHS.values() if p), key=len, reverse=True)

# (workload, a pod its controller created), as captured: mutating and validating stage alike.
PAIRS = [
    ("0039", "0043"),  # Deployment web-deploy -> a pod of its first ReplicaSet
    ("0040", "0044"),
    ("0041", "0043"),  # that ReplicaSet, created by the deployment controller
    ("0042", "0046"),
    ("0047", "0049"),  # StatefulSet db-sts -> db-sts-0
    ("0048", "0050"),
    ("0053", "0055"),  # Job once-job
    ("0054", "0056"),
    ("0057", "0065"),  # CronJob nightly-cron -> a pod of a Job made from it
    ("0058", "0066"),
    ("0059", "0061"),  # bare ReplicaSet
    ("0060", "0062"),
    ("0063", "0065"),  # Job made from the CronJob
    ("0064", "0066"),
    ("0067", "0071"),  # Deployment image update -> a pod of the new ReplicaSet
    ("0068", "0072"),
    ("0069", "0071"),
    ("0070", "0072"),
]
PAIR_IDS = [f"{w}-{p}" for w, p in PAIRS]
DAEMON_TOLERATIONS = [
    {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": effect}
    for key, effect in [
        ("not-ready", "NoExecute"),
        ("unreachable", "NoExecute"),
        ("disk-pressure", "NoSchedule"),
        ("memory-pressure", "NoSchedule"),
        ("pid-pressure", "NoSchedule"),
        ("unschedulable", "NoSchedule"),
    ]
]
EVICTION_TOLERATIONS = [
    {
        "key": f"node.kubernetes.io/{key}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    for key in ("not-ready", "unreachable")
]


def _policy(name: str, spec: str) -> str:
    return f"apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n{spec}\n---\n"


REQUIRE = "    rules: [{name: required, requireRequests: {}}]"
DEFAULT_CPU = "    rules: [{name: d, resources: {defaults: {cpu: {request: 1}}}}]"
# Policy sets under which some workloads of the fixtures comply and others do not.
CRAFTED = {
    "requests-everywhere": _policy("strict", REQUIRE),
    "ephemeral-storage-for-web": _policy(
        "web",
        "    match: {selector: {matchExpressions: [{key: app, operator: In, values: [web-deploy]}]}}\n"
        "    rules: [{name: required, requireRequests: {resources: [ephemeral-storage]}}]",
    ),
    "not-from-deployments": _policy(
        "bare",
        "    match: {selector: {matchExpressions: [{key: pod-template-hash, operator: DoesNotExist}]}}\n"
        + REQUIRE,
    ),
    "jobs-only": _policy(
        "jobs", "    match: {selector: {matchExpressions: [{key: job-name, operator: Exists}]}}\n" + REQUIRE
    ),
    "first-stateful-pod": _policy(
        "sts",
        "    match: {selector: {matchLabels: {statefulset.kubernetes.io/pod-name: db-sts-0}}}\n" + REQUIRE,
    ),
    "job-controller-excluded": _policy(
        "no-jobs", "    exclude: {serviceAccounts: [kube-system/job-controller]}\n" + REQUIRE
    ),
    "admin-excluded": _policy("no-admin", "    exclude: {users: [admin]}\n" + REQUIRE),
    "app-label-required": _policy("app", "    rules: [{name: app, requireLabels: {keys: [app]}}]"),
    "defaults-then-required": _policy(
        "defaults",
        "    match: {namespaces: [capture-demo], selector: {matchLabels: {app: db-sts}}}\n"
        "    rules: [{name: sized, resources: {defaults: {cpu: {request: 50m}, memory: {request: 64Mi}}}}]",
    )
    + _policy("strict", REQUIRE),
}


def outcome(decision: Decision) -> tuple[Any, ...]:
    """What must not differ between a workload and its pods: verdict, violations, changes, warnings."""
    prefix = f"{decision.workload}: pod template " if decision.workload else ""
    violations = []
    for v in decision.violations:
        message = v.message.removeprefix(prefix).removeprefix("pod ")
        for parts in TEMPLATES:
            message = message.replace(".".join(parts) + ".spec.", "spec.")
        violations.append((v.policy, v.rule, v.action, message))
    changes = []
    for c in decision.changes:
        path = c.path
        for parts in TEMPLATES:
            path = path.removeprefix("/" + "/".join(parts)) if decision.workload else path
        changes.append((c.policy, c.rule, path))
    return decision.allowed, sorted(violations), changes, decision.warnings


@pytest.mark.parametrize(("workload", "pod"), PAIRS, ids=PAIR_IDS)
def test_default_policies_judge_a_workload_as_its_pods(
    workload: str, pod: str, default_policies: PolicySet
) -> None:
    judged = evaluate(default_policies, fixture_request(workload))
    assert judged.workload and judged.patch == ()
    assert outcome(judged) == outcome(evaluate(default_policies, fixture_request(pod)))


@pytest.mark.parametrize("crafted", CRAFTED, ids=list(CRAFTED))
@pytest.mark.parametrize(("workload", "pod"), PAIRS, ids=PAIR_IDS)
def test_crafted_policies_judge_a_workload_as_its_pods(workload: str, pod: str, crafted: str) -> None:
    policies = policy_text(CRAFTED[crafted])
    assert outcome(evaluate(policies, fixture_request(workload))) == outcome(
        evaluate(policies, fixture_request(pod))
    )


@pytest.mark.parametrize("crafted", CRAFTED, ids=list(CRAFTED))
def test_crafted_policies_admit_some_workloads_and_deny_others(crafted: str) -> None:
    policies = policy_text(CRAFTED[crafted])
    verdicts = {evaluate(policies, fixture_request(w)).allowed for w, _ in PAIRS}
    if crafted == "defaults-then-required":
        # The defaults make db-sts compliant, and its pods with it; the others stay denied.
        assert evaluate(policies, fixture_request("0047")).allowed
    assert verdicts == {True, False}


def derived_pod(
    workload: str, creator: str, labels: dict[str, str], tolerations: list[Any]
) -> dict[str, Any]:
    """The CREATE of a pod as the captured ones show it, made by hand from a captured workload."""
    request = fixture_request(workload)
    obj, kind = request["object"], request["kind"]["kind"]
    template = copy.deepcopy(obj["spec"]["template"])
    metadata = template["metadata"]
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    owner = {"apiVersion": obj["apiVersion"], "kind": kind, "name": obj["metadata"]["name"]}
    metadata.update(
        generateName=f"{obj['metadata']['name']}-",
        namespace=request["namespace"],
        ownerReferences=[
            {**owner, "uid": obj["metadata"].get("uid", ""), "controller": True, "blockOwnerDeletion": True}
        ],
    )
    namespace_file = {
        "path": "namespace",
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
    }
    token = {
        "name": "kube-api-access-abcde",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [namespace_file]}},
            ],
            "defaultMode": 420,
        },
    }
    mount = {
        "name": token["name"],
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }
    spec = template["spec"]
    for container in spec["containers"]:
        container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
    spec.update(
        volumes=[*spec.get("volumes", []), token],
        serviceAccountName="default",
        serviceAccount="default",
        tolerations=[*spec.get("tolerations", []), *tolerations],
        priority=0,
        enableServiceLinks=True,
        preemptionPolicy="PreemptLowerPriority",
    )
    return {
        **{k: v for k, v in request.items() if k not in ("name", "object")},
        "uid": f"derived-{workload}",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "userInfo": {
            "username": f"system:serviceaccount:kube-system:{creator}",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        },
        "object": {"kind": "Pod", "apiVersion": "v1", **template, "status": {}},
    }


def test_the_hand_derived_pod_is_what_the_controller_created() -> None:
    derived = derived_pod("0060", "replicaset-controller", {}, EVICTION_TOLERATIONS)["object"]
    captured = copy.deepcopy(fixture_request("0061")["object"])
    del captured["metadata"]["managedFields"]
    volume = captured["spec"]["volumes"][0]["name"]
    assert json.loads(json.dumps(derived).replace("kube-api-access-abcde", volume)) == captured


@pytest.mark.parametrize("workload", ["0051", "0052"])
@pytest.mark.parametrize("crafted", [*CRAFTED, "defaults"])
def test_a_daemonset_is_judged_as_the_pod_derived_from_it(workload: str, crafted: str) -> None:
    policies = load_policies(POLICIES) if crafted == "defaults" else policy_text(CRAFTED[crafted])
    labels = {"controller-revision-hash": "5d8f7c6b9d", "pod-template-generation": "1"}
    pod = derived_pod(workload, "daemon-set-controller", labels, DAEMON_TOLERATIONS)
    assert outcome(evaluate(policies, fixture_request(workload))) == outcome(evaluate(policies, pod))


def _deployment(**labels: str) -> dict[str, Any]:
    """0039 with no requests; its container keeps a memory limit, which its pods get as a request."""
    request = fixture_request("0039")
    template = request["object"]["spec"]["template"]
    del template["spec"]["containers"][0]["resources"]["requests"]
    template["metadata"]["labels"].update(labels)
    return request


def test_a_deployment_without_requests_is_denied_naming_it_and_its_container() -> None:
    decision = evaluate(load_policies(RESOURCES_ONLY), _deployment())
    assert not decision.allowed
    assert decision.denial_message() == (
        'requests-required.cpu-and-memory: Deployment web-deploy: pod template container "web" is missing '
        "cpu request; set spec.template.spec.containers[0].resources.requests "
        "(to what the container uses under normal load, e.g. cpu: 100m, memory: 256Mi; "
        "`kubectl top pod` shows it)"
    )


def test_a_test_labelled_deployment_is_admitted_unchanged_and_its_pods_get_the_defaults(
    default_policies: PolicySet,
) -> None:
    for policies in (load_policies(RESOURCES_ONLY), default_policies):
        decision = evaluate(policies, _deployment(**{"app.kubernetes.io/env": "test"}))
        assert decision.allowed and decision.patch == () and decision.stored_changes == ()
        assert decision.object == _deployment(**{"app.kubernetes.io/env": "test"})["object"]
        defaults = [c for c in decision.pod_changes if c.policy == "test-defaults"]
        # The memory limit is the user's: the pods get its value as request, and cpu from the defaults.
        assert [(c.path, c.message) for c in defaults] == [
            (
                "/spec/template/spec/containers/0/resources/limits/cpu",
                'container "web": cpu limit set to 100m',
            ),
            (
                "/spec/template/spec/containers/0/resources/requests/cpu",
                'container "web": cpu request set to 100m',
            ),
        ]


def _update(old_template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """0068 (an UPDATE of web-deploy) with both templates non-compliant, then `changes` made to it."""
    request = fixture_request("0068")
    request["oldObject"]["spec"]["template"] = copy.deepcopy(old_template)
    request["object"]["spec"]["template"] = copy.deepcopy(old_template)
    for path, value in changes.items():
        node = request["object"]
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return request


def test_scaling_or_labelling_a_non_compliant_deployment_is_admitted() -> None:
    policies = load_policies(RESOURCES_ONLY)
    stale = _deployment()["object"]["spec"]["template"]
    for request in (
        _update(stale, **{"spec.replicas": 5}),
        _update(stale, **{"metadata.labels": {"x": "y"}}),
    ):
        decision = evaluate(policies, request)
        assert decision.allowed and decision.patch == ()
        assert decision.skipped == ("UPDATE leaves the pod template unchanged",)
    # A new image would start pods that cannot be created: the rollout is denied up front.
    image = copy.deepcopy(stale)
    image["spec"]["containers"][0]["image"] = "nginx:1.29"
    assert not evaluate(policies, _update(stale, **{"spec.template": image})).allowed


def test_an_update_is_judged_with_the_mutations_its_new_pods_get() -> None:
    # Mutations match CREATE only, yet a rollout creates pods: the defaults still count.
    stale = _deployment(**{"app.kubernetes.io/env": "test"})["object"]["spec"]["template"]
    image = copy.deepcopy(stale)
    image["spec"]["containers"][0]["image"] = "nginx:1.29"
    decision = evaluate(load_policies(RESOURCES_ONLY), _update(stale, **{"spec.template": image}))
    assert decision.allowed and decision.patch == () and decision.pod_changes


def test_kinds_limit_a_policy_to_pods_or_to_workloads() -> None:
    pods_only = policy_text(_policy("pods", "    match: {kinds: [Pod]}\n" + REQUIRE))
    assert evaluate(pods_only, fixture_request("0047")).allowed
    assert not evaluate(pods_only, fixture_request("0049")).allowed
    assert (
        "pods.required: kind StatefulSet is not among Pod"
        in evaluate(pods_only, fixture_request("0047"), explain=True).skipped
    )
    workloads_only = policy_text(_policy("sts", "    match: {kinds: [StatefulSet]}\n" + REQUIRE))
    assert not evaluate(workloads_only, fixture_request("0047")).allowed
    assert evaluate(workloads_only, fixture_request("0049")).allowed
    assert evaluate(workloads_only, fixture_request("0053")).allowed  # a Job


def test_pod_only_mutations_still_make_the_workload_compliant() -> None:
    defaults = RESOURCES_ONLY.read_text().replace(
        "  match:\n    any:", "  match:\n    kinds: [Pod]\n    any:", 1
    )
    policies = parse_sources([("resources.yaml", defaults)])
    assert policies.policies[1].match.kinds == frozenset({"Pod"})
    assert evaluate(policies, _deployment(**{"app.kubernetes.io/env": "test"})).allowed


def test_users_are_the_controllers_that_create_the_pods() -> None:
    admin_excluded = policy_text(CRAFTED["admin-excluded"])
    assert evaluate(admin_excluded, fixture_request("0002")).allowed  # a bare pod made by admin
    assert not evaluate(admin_excluded, fixture_request("0047")).allowed  # admin's StatefulSet: its pods
    jobs_excluded = evaluate(policy_text(CRAFTED["job-controller-excluded"]), fixture_request("0057"))
    assert jobs_excluded.allowed
    assert jobs_excluded.skipped == (
        "no-jobs.required: service account kube-system/job-controller is excluded",
    )


def _with_mutate_templates(text: str) -> str:
    """Policy texts with mutateTemplates: true on every policy that mutates."""
    mutator_keys = {m.KEY for m in MUTATORS}
    documents = [d for d in yaml.safe_load_all(text) if d]
    for document in documents:
        rules = document["spec"].get("rules", []) if document["kind"] == "Policy" else []
        if any(mutator_keys.intersection(rule) for rule in rules):
            document["spec"]["mutateTemplates"] = True
    return yaml.safe_dump_all(documents)


def test_mutate_templates_stores_the_defaults_in_the_template() -> None:
    policies = parse_sources([("r.yaml", _with_mutate_templates(RESOURCES_ONLY.read_text()))])
    request = _deployment(**{"app.kubernetes.io/env": "test"})
    decision = evaluate(policies, request)
    assert decision.allowed and decision.pod_changes == ()
    assert {c.path for c in decision.stored_changes} == {
        "/spec/template/spec/containers/0/resources/limits/cpu",
        "/spec/template/spec/containers/0/resources/requests/cpu",
        "/spec/template/spec/containers/0/resources/requests/memory",
    }
    stored = jsonpatch.apply_patch(request["object"], list(decision.patch))
    assert stored == decision.object
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "100m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},  # never above the user's limit
    }
    again = copy.deepcopy(request)
    again["object"] = stored
    assert evaluate(policies, again).patch == ()


@pytest.mark.parametrize(("workload", "pod"), PAIRS, ids=PAIR_IDS)
def test_mutate_templates_keeps_verdicts_and_is_reinvocation_safe(workload: str, pod: str) -> None:
    texts = [(file, _with_mutate_templates(text)) for file, text in read_sources(POLICIES)]
    policies = parse_sources(texts)
    request = fixture_request(workload)
    decision = evaluate(policies, request)
    pods = evaluate(policies, fixture_request(pod))
    assert (decision.allowed, decision.warnings) == (pods.allowed, pods.warnings)
    again = copy.deepcopy(request)
    again["object"] = jsonpatch.apply_patch(copy.deepcopy(request["object"]), list(decision.patch))
    assert again["object"] == decision.object
    assert evaluate(policies, again).patch == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "    match: {kinds: [Deployment]}\n" + DEFAULT_CPU,
            "t.yaml:5: spec.match.kinds: lists no Pod, so this policy's mutations never apply: "
            "workloads' pods get mutations when they are created, templates only with mutateTemplates: true",
        ),
        (
            "    match: {kinds: [Pod]}\n    mutateTemplates: true\n" + DEFAULT_CPU,
            "t.yaml:6: spec.mutateTemplates: has no effect: match.kinds lists no workload kind",
        ),
        (
            "    mutateTemplates: true\n" + REQUIRE,
            "t.yaml:5: spec.mutateTemplates: has no effect: the policy has no mutation rule",
        ),
        (
            "    match: {kinds: [Deployment], operations: [UPDATE]}\n" + REQUIRE,
            "t.yaml:5: spec.match.operations: lacks CREATE, so these workloads are never judged: a workload "
            "is judged as the pods it will create, and pods are only ever created",
        ),
    ],
    ids=[
        "mutations-without-pod",
        "templates-without-workloads",
        "templates-without-mutations",
        "update-only",
    ],
)
def test_policies_that_would_never_apply_to_workloads_are_refused(spec: str, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_sources([("t.yaml", _policy("p", spec).removesuffix("---\n"))])
    assert str(error.value) == message


def test_a_template_without_metadata_is_judged_without_a_patch(default_policies: PolicySet) -> None:
    request = fixture_request("0053")
    del request["object"]["spec"]["template"]["metadata"]
    decision = evaluate(default_policies, request)
    assert decision.patch == () and decision.object == request["object"]
    assert decision.workload == "Job once-job" and not decision.allowed


def test_pods_name_no_workload_and_all_their_changes_are_stored(default_policies: PolicySet) -> None:
    request = fixture_request("0001")
    request["object"]["metadata"]["labels"] = {"app.kubernetes.io/env": "test"}
    decision = evaluate(default_policies, request)
    assert decision.workload == "" and decision.pod_changes == ()
    assert decision.stored_changes == decision.changes and decision.patch


def test_mutate_templates_follows_kinds_and_every_template_change() -> None:
    policies = policy_text(
        _policy(
            "deployments",
            "    match: {kinds: [Deployment], namespaces: [capture-demo]}\n    mutateTemplates: true\n"
            "    rules: [{name: d, resources: {defaults: {cpu: {request: 100m}, memory: {request: 64Mi}}}}]",
        )
        + _policy("strict", REQUIRE)
    )
    created = evaluate(policies, _deployment())
    assert created.allowed and [c.path for c in created.stored_changes] == [
        "/spec/template/spec/containers/0/resources/requests/cpu",
        "/spec/template/spec/containers/0/resources/requests/memory",
    ]
    # An update that drops the stored defaults changes the template: they are stored again.
    stale = _deployment()["object"]["spec"]["template"]
    image = copy.deepcopy(stale)
    image["spec"]["containers"][0]["image"] = "nginx:1.29"
    updated = evaluate(policies, _update(stale, **{"spec.template": image}))
    assert updated.allowed and len(updated.stored_changes) == 2
    # Other kinds are not in `kinds`: neither their templates nor their pods get the defaults.
    sts = evaluate(policies, fixture_request("0047"), explain=True)
    assert not sts.allowed and sts.changes == ()
    assert "deployments.d (template): kind StatefulSet is not among Deployment" in sts.skipped
